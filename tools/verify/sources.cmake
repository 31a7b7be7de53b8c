# The sources of ssiat-verify (relative to the repository root): the attestation checks and what
# they regenerate and hash, and nothing that needs BLAS, MPI, HDF5, CUDA or x86-only flags.
set(SSIAT_VERIFY_SOURCES
  tools/verify/main.cpp
  core/verify.cpp core/init_table.cpp core/init.cpp core/philox.cpp core/seed_registry.cpp
  core/init_leaf.cpp core/merkle.cpp core/state_digest.cpp core/chain.cpp core/hash.cpp core/fs.cpp
  core/keys.cpp core/dsse.cpp core/recipe.cpp distributed/mesh.cpp)
