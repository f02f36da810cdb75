"""Getting a source from its origin.

- `fetcher`: the HTTP client (the only module that imports aiohttp's
  client): redirects, limits on time and bytes, errors translated;
- `policy`: which addresses may be fetched, applied after DNS (pure);
- `headers`: which request headers are forwarded, and which answers may be
  shared (pure).
"""
