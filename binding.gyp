{
  "targets": [
    {
      "target_name": "sppo_native",
      "sources": ["<!@(node scripts/list-sources.mjs)"],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "SPPO_CUDA_ARCHS_STR=\"\""],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-fopenmp"],
      "cflags!": ["-fno-exceptions"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldl", "-lrt"]
    }
  ]
}
