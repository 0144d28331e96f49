"""Model families, one module each, all with the same surface.

Each family is registered in `models.registry.FAMILIES` with its card (pipeline, task, metric,
TFLite signature), and its module exposes:
    make_model(spec, *, <explicit hyper-parameters>) -> a compiled keras.Model
    search_space(hp) -> dict of the tunable values (with their defaults) for make_model
    build_model(hp, spec) -> make_model(spec, **search_space(hp))
    sample_batch(spec, size, seed) -> (inputs, targets): a tiny batch of the task's model inputs
        (after any preprocessing) on which `model.train_on_batch(inputs, targets)` trains a step
    model_signatures(model, spec) -> {name: ConcreteFunction}: the signatures the family serves,
        over model inputs (dense tensors); the card's `tflite_signature` is one of them
and may define
    train(model, spec, train_dataset, eval_dataset, *, train_steps, epochs, callbacks) -> the
        history dict: trains the model in place of `model.fit` (transfer learning's phases), in
        the Trainer (`models.training.train_model`) and in every tuner trial
The contract test (tests/test_family_contract.py) checks every registered family against this.
"""
