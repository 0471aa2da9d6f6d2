"""The study's configs and reproduction spec, shipped inside circlereg as `circlereg.configs`
(pyproject.toml maps this folder there): `circlereg configs` lists them."""
