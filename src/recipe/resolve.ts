// The recipe a command runs: defaults, then a recipe file (or the demo recipe), then flags.
import type { Recipe } from './types.js';
import { defaultRecipe } from './fields.js';
import { applyOverrides, loadRecipeFile, validateRecipe } from './load.js';

export interface RecipeSources {
  recipeFile?: string;
  /** Used when no recipe file is given and the flags name no model. */
  demoRecipeFile?: string;
  overrides: Record<string, unknown>;
}

export function resolveRecipe(src: RecipeSources): { recipe: Recipe; demo: boolean } {
  let recipe = defaultRecipe();
  let demo = false;
  if (src.recipeFile) recipe = loadRecipeFile(src.recipeFile, recipe);
  else if (src.demoRecipeFile && src.overrides.model === undefined) {
    recipe = loadRecipeFile(src.demoRecipeFile, recipe);
    demo = true;
  }
  applyOverrides(recipe, src.overrides);
  return { recipe: validateRecipe(recipe), demo };
}
