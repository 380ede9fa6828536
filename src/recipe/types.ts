// The recipe: every setting of an SPPO run, as a type derived from the field table
// (src/recipe/fields.ts), so that a setting is declared once, with its default and help text.
// Defaults are the reference recipe (DESIGN.md).
import type { Field, RecipeField, ValueOf } from './fields.js';

type Nest<P extends string, V> = P extends `${infer Head}.${infer Rest}` ? { [K in Head]: Nest<Rest, V> } : { [K in P]: V };
type FieldNest<F> = F extends Field<infer P, infer T> ? Nest<P, ValueOf<T>> : never;
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type Expand<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]: Expand<T[K]> } : T;

export type Recipe = Expand<UnionToIntersection<FieldNest<RecipeField>>>;

export type PromptSplit = Recipe['promptSplit'];
export type { Pairing } from '../sppo/pairs.js';
export type { ScheduleKind } from '../stages/schedule.js';
export type { OptimizerKind } from '../native/kinds.js';
