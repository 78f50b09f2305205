import { defineConfig } from "vitest/config";

// Served by the function app under /api/ui/ (rlm_activities/web_ui.py); `npm run dev` serves
// the same paths and sends the API calls to a local `python -m devhost serve`.
export default defineConfig({
  base: "/api/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: {
      "^/api/(?!ui/)": { target: process.env.RLM_API ?? "http://127.0.0.1:7071", changeOrigin: true },
    },
  },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
