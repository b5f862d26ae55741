import { defineConfig } from "vite";

// A static build: dist/ is what the local server serves and what is published to the bucket.
export default defineConfig({
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
});
