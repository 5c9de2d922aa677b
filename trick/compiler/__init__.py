"""The compiler: semantic checks and registries (no torch); lowering, build and codegen."""
