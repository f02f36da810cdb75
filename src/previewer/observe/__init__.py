"""What previewer says about itself.

- `recorder`: the metrics seam every layer reports to (`Recorder`,
  `NoMetrics`, `Durations`, the label values): low, imports no exporter;
- `exporter`: Prometheus (the only module that imports `prometheus_client`),
  which reads the service's, the worker's and the connections' health at
  scrape time: high, above everything it reads;
- `logs`: the two log formats and the request id on every line.
"""
