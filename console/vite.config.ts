import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// The console is served by the service at /console (src/platform/console.ts); in development
// `npm run console:dev` serves it from Vite and forwards API calls to a service on :8000.
export default defineConfig({
  root: import.meta.dirname,
  base: '/console/',
  plugins: [react()],
  // React Aria adds two small <style> elements at run time (touch behaviour of pressable
  // elements, overscroll while a modal is open). The service answers index.html with a fresh
  // nonce in place of this placeholder and allows styles carrying it; no 'unsafe-inline'.
  html: { cspNonce: 'CONSOLE_CSP_NONCE' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Every browser the console supports has module preload; the polyfill is dead weight.
    modulePreload: { polyfill: false },
    // Inlined assets would be data: URLs, which the console's Content-Security-Policy refuses
    // for fonts and scripts: every asset stays a file of its own.
    assetsInlineLimit: 0,
    // React, React Aria and the client together: about 150 KB compressed, cached apart.
    chunkSizeWarningLimit: 700,
    rollupOptions: {
      output: {
        // The libraries change less often than the console: their own file stays cached.
        manualChunks: (id) => (id.includes('node_modules') ? 'vendor' : undefined),
      },
    },
  },
  server: {
    proxy: { '/v1': 'http://127.0.0.1:8000' },
  },
})
