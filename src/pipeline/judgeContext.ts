// The judge context that plugs the model engine into reward-model judges: models load through the
// provider on the run's device, and each reward model's own tokenizer and chat template encode
// the conversations (one TextCodec per folder, loaded once). PairRM judges get the run's device
// and precision; the policy's chat template (chatPrompt) comes from the caller, who knows the policy.
import type { DeviceName } from '../native/addon.js';
import type { ModelPrecision } from '../model/engine.js';
import type { JudgeContext } from '../judge/factory.js';
import { TextCodec } from '../text/codec.js';
import type { ModelProvider } from './modelProvider.js';

export function engineJudgeContext(provider: ModelProvider, device: DeviceName, precision: ModelPrecision, extra: JudgeContext = {}): JudgeContext {
  const codecs = new Map<string, TextCodec>();
  return {
    ...extra,
    device: extra.device ?? device,
    precision: extra.precision ?? precision,
    loadModel: extra.loadModel ?? ((folder) => provider.load(folder, device, precision)),
    rewardModelTokens:
      extra.rewardModelTokens ??
      ((folder, prompt, response) => {
        let c = codecs.get(folder);
        if (!c) codecs.set(folder, (c = TextCodec.load(folder)));
        return c.encodeConversation(prompt, response);
      }),
  };
}
