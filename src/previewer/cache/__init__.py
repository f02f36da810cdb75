"""The persistent preview cache and the single flight in front of it.

- `disk`: `DiskCache`, previews on local disk under a byte budget with
  least-recently-used eviction;
- `index`: the LRU order and the sizes, in memory (pure);
- `storage`: the files: sharded paths, atomic writes, verified reads, the scan
  at start-up (blocking I/O, run in threads);
- `flight`: concurrent requests for one key share one piece of work.

How a preview is keyed: `options.PreviewOptions.cache_key` (the operation,
size, gravity, output format and source), hashed by `storage`.
"""
