"""The results table (docs/results.md): `split` (the fixed split), `models` (which models and what they are),
`training` (the shared budget), `scoring` (evaluation next to the gray reference), `report` (table, figures and the
Markdown template) and `command` (scripts/make_results.py and `gan-color results`)."""
