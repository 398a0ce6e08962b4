// Vite builds the page into dist/, which chat-api serves at /chat/.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/chat/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // One small bundle; no inline scripts (the page's content security policy forbids them).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` against a local `./ops/run`.
    proxy: { '/api': 'http://127.0.0.1:8080', '/chat/config.json': 'http://127.0.0.1:8080' },
  },
});
