"""`previewer warm`: ask a service for a list of previews ahead of traffic.

- `tool`: the command (concurrency, progress, the summary; the only module
  that imports rich);
- `plan`: the list of paths to ask, from a file or from sizes and sources;
- `client`: keep-alive HTTP/1.1 connections to the service;
- `stats`: the tally of what came back.
"""
