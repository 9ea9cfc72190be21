"""The experiment configs (YAML), installed as the package data of `gan_color.configs`; the tools resolve them with
`gan_color.tools.configs.config_path`."""
