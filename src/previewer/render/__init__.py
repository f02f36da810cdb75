"""The render stage: a source's bytes in, a preview's bytes out.

- `renderer`: the seam between the service and a miss (source cache, fetch,
  admission, render); `Renderer` is what broker mode's front replaces;
- `admission`: render slots and the bounded queue in front of them;
- `imaging`: libvips (the only module that imports pyvips): decode under the
  limits, resize, crop, encode;
- `geometry`: fill and fit sizes, shrink-on-load, the work bounds (pure);
- `faces` (the face detector), `framing` (where a crop keeps the faces,
  pure) and `attention` (the saliency analysis): the gravities;
- `formats`, `bmff`, `heic`, `jpeg`, `icc`: sniffing sources by their bytes,
  the HEIF container, HEIC decoding, JPEG header reading, colour profiles.
"""
