"""Configuration, from one place.

- `settings`: every setting declared once (flag, environment variable,
  default, help), parsed into the typed configs each part takes;
- `values`: the parsers for sizes, durations and addresses (pure);
- `doc`: the README's configuration table, generated from `settings`.
"""
