"""What previewer says about itself, as the layers below the top report it.

- `recorder`: the metrics seam every layer reports to (`Recorder`,
  `NoMetrics`, `Durations`, the label values); low: it imports only the
  error hierarchy. The Prometheus exporter that reads the service's, the
  worker's and the connections' health is `previewer.metrics`, at the top
  beside the command line, so that nothing low imports anything high;
- `logs`: the two log formats and the request id on every line.
"""
