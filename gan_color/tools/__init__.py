"""Tooling on top of the library: the results table (`results`), the speed benchmark (`benchmark`) and where both
find the experiment configs (`configs`). They call only the library's public names; the library never imports them."""
