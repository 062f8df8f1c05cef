# Sanitizers, valgrind, fuzzing, ABI checks, static analysis, coverage.
