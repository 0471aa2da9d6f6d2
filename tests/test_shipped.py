"""The study as circlereg ships it: configs and reproduction spec as package data, shipped
configs by name, `circlereg configs`."""

from importlib import resources

from .conftest import CONFIGS


def test_the_package_ships_every_file_under_configs_byte_for_byte():
    packaged = resources.files("circlereg.configs")
    shipped = {entry.name: entry.read_bytes() for entry in packaged.iterdir()
               if entry.name.endswith(".yaml")}
    shipped.update({f"reproduce/{entry.name}": entry.read_bytes()
                    for entry in packaged.joinpath("reproduce").iterdir()})
    in_repository = {str(path.relative_to(CONFIGS)): path.read_bytes()
                     for path in CONFIGS.rglob("*.yaml")}
    assert "reproduce/study.yaml" in shipped and "l1_pre_relu.yaml" in shipped
    assert shipped == in_repository
