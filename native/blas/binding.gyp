{
  "targets": [
    {
      "target_name": "mor_blas",
      "sources": ["src/mor_blas.cc", "src/mor_rank.cc", "src/mor_morlayer.cc", "src/mor_store.cc", "src/mor_convert.cc", "src/mor_xent.cc", "src/mor_attention.cc",
                  "src/mor_norm.cc", "src/mor_swiglu.cc", "src/mor_rope.cc", "src/mor_sgemm.cc", "src/mor_optim.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-std=c++17"],
      "libraries": ["-lopenblas"]
    }
  ]
}
