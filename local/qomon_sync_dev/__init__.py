"""Dev-only tooling: the Qomon stand-in, local mode, the CLI. Never shipped to Lambda."""
