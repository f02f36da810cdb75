"""The HTTP edge: the aiohttp server and what guards its sockets.

- `server`: the application, its routes, and the responses (the only module
  that imports `aiohttp.web`);
- `connections`: the bounds on client connections (request-head deadline,
  keep-alive idle timeout, progress timeout for slow readers, the
  connection cap);
- `accesslog`: one line per response, written off the event loop;
- `playground`: the browser page at `/playground` (`assets/`).
"""
