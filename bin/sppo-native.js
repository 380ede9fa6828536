#!/usr/bin/env node
import('../dist/cli/main.js')
  .then((m) => m.main(process.argv.slice(2)))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist')) {
      console.error('sppo-native: dist/ is missing; run `npm run build:ts` (npm install does it)');
    } else {
      console.error(err instanceof Error ? err.stack ?? err.message : err);
    }
    process.exit(1);
  });
