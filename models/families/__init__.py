"""Model families, one module each, all with the same surface.

Each module exposes:
    make_model(spec, *, <explicit hyper-parameters>) -> a compiled keras.Model
    search_space(hp) -> dict of the tunable values (with their defaults) for make_model
    build_model(hp, spec) -> make_model(spec, **search_space(hp))
"""
