"""The process's resources, set at start-up.

- `descriptors`: the open-file limit, raised to the hard one, and the
  client-connection cap it allows;
- `memory`: glibc malloc tunables (standard library only: `launch` runs it
  before anything heavy is imported).
"""
