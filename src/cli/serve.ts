import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { nativeEngine } from '../pipeline/modelProvider.js';
import { TextCodec } from '../text/codec.js';
import { startServer } from '../serve/server.js';
import { DEVICES, type DeviceName } from '../native/kinds.js';

interface ServeArgs {
  model: string;
  host: string;
  port: number;
  'served-model-name'?: string;
  device: string;
  'max-batch': number;
  'chat-template'?: string;
  quiet: boolean;
}

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'Serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)',
  builder: (y) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'Model folder in Hugging Face layout (config.json, safetensors, tokenizer files)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'Address to listen on (0.0.0.0 for every interface)' })
      .option('port', { type: 'number', default: 8000, describe: 'Port (0: any free port; the address is printed)' })
      .option('served-model-name', { type: 'string', describe: "The name clients pass as 'model' [default: the model folder's absolute path]" })
      .option('device', { type: 'string', choices: [...DEVICES], default: 'cpu', describe: 'Compute device: cpu, or cuda (fp32; needs a CUDA build, a visible GPU and cuBLASLt)' })
      .option('max-batch', { type: 'number', default: 32, describe: 'Most samples in one generate call (concurrent requests with the same settings share one)' })
      .option('chat-template', { type: 'string', describe: 'Jinja chat template file, for a model folder whose tokenizer_config.json has none' })
      .option('quiet', { type: 'boolean', default: false, describe: 'Do not log each request' })
      .example('$0 serve --model runs/m7b/iter-3/checkpoint-epoch-1 --port 8000', 'then: curl localhost:8000/v1/models')
      .epilogue('Sampling: n, temperature, top_p, max_tokens, seed (choice k of a prompt is the seed’s k-th sample stream, as in the engine’s rollout), stop, logprobs / top_logprobs, stream. Streamed chunks are sent when the batch they belong to is done (the engine makes whole samples).'),
  handler: async (args) => {
    if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) throw new Error(`--port must be an integer from 0 to 65535 (got ${args.port})`);
    if (!Number.isInteger(args['max-batch']) || args['max-batch'] < 1) throw new Error(`--max-batch must be a positive integer (got ${args['max-batch']})`);
    const folder = resolve(args.model);
    const codec = TextCodec.load(folder, { chatTemplateFile: args['chat-template'] ? resolve(args['chat-template']) : null });
    const model = await nativeEngine.load(folder, args.device as DeviceName);
    const name = args['served-model-name'] ?? folder;
    const s = await startServer({
      model, codec, servedModelName: name, host: args.host, port: args.port, maxBatch: args['max-batch'],
      onLog: args.quiet ? undefined : (line) => console.error(line),
    });
    console.error(`sppo-native serve: '${name}' at ${s.url}/v1 (Ctrl-C stops)`);
    await new Promise<void>((done) => s.server.on('close', done));
  },
};
