import { fileURLToPath, URL } from 'node:url';
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

// Built into the server binary and served under /ui/ (src/replayrail/server/ui_assets).
export default defineConfig({
  base: '/ui/',
  plugins: [vue()],
  resolve: {
    alias: {
      '@replayrail/client': fileURLToPath(new URL('../clients/js/src/index.ts', import.meta.url)),
    },
  },
  build: { outDir: process.env.RR_UI_OUT_DIR ?? 'dist', emptyOutDir: true },
  // `npm run dev` against a server on :8000.
  server: { proxy: { '/v1': 'http://127.0.0.1:8000', '/events': 'http://127.0.0.1:8000',
                     '/ws': { target: 'ws://127.0.0.1:8000', ws: true } } },
});
