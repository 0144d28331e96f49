"""Tests of the atomic, idempotent Pusher: `push_model`, its helpers and the TFX executor.

A fake SavedModel (a folder with a `saved_model.pb` and variables) stands in for a trained model;
nothing is loaded, only copied. Importing the executor imports TFX and TensorFlow.
"""

import json
import os
import re
import shutil

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import path_utils, proto_utils

from components.pusher import executor as pusher_executor
from tests import object_stores
from tests.files import snapshot

MODEL_FILES = {
    "saved_model.pb": b"\x08\x01saved model graph",
    "fingerprint.pb": b"fingerprint",
    os.path.join("variables", "variables.index"): b"index bytes",
    os.path.join("variables", "variables.data-00000-of-00001"): b"\x00\x01\x02weights",
    os.path.join("assets", "vocabulary.txt"): b"zero\none\n",
}
PUSH_RECORD = os.path.join("assets.extra", "dlforge_push.json")
FIXED_TIME = 1_700_000_000.0


def _make_saved_model(model_dir) -> str:
    for relative, content in MODEL_FILES.items():
        path = os.path.join(model_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
    return str(model_dir)


@pytest.fixture
def model_dir(tmp_path) -> str:
    return _make_saved_model(tmp_path / "trainer" / "model")


@pytest.fixture
def base_dir(tmp_path) -> str:
    return str(tmp_path / "serving" / "digits_cnn")


@pytest.fixture
def frozen_clock(monkeypatch) -> None:
    monkeypatch.setattr(pusher_executor.time, "time", lambda: FIXED_TIME)


def test_push_model_copies_every_file_into_a_numeric_version_folder(model_dir, base_dir):
    push = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    assert push.copied is True
    assert push.version.isdigit()
    assert push.path == os.path.join(base_dir, push.version)
    pushed_files = snapshot(push.path)
    pushed_files.pop(PUSH_RECORD)
    assert pushed_files == MODEL_FILES


def test_push_model_records_the_source_uri_in_the_version(model_dir, base_dir):
    push = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    with open(os.path.join(push.path, PUSH_RECORD)) as handle:
        record = json.load(handle)
    assert record == {"source_uri": "uri://model/1", "version": push.version}


def test_push_model_uses_the_unix_time_as_the_first_version(model_dir, base_dir, frozen_clock):
    push = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    assert push.version == str(int(FIXED_TIME))


def test_push_model_of_the_same_source_returns_the_existing_version(model_dir, base_dir):
    first = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    again = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    assert again == pusher_executor.Push(version=first.version, path=first.path, copied=False)
    assert os.listdir(base_dir) == [first.version]


def test_push_model_of_another_source_gets_a_larger_version_on_a_still_clock(
    model_dir, base_dir, frozen_clock
):
    first = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    second = pusher_executor.push_model(model_dir, base_dir, "uri://model/2")

    assert second.copied is True
    assert int(second.version) > int(first.version)
    assert sorted(os.listdir(base_dir)) == sorted([first.version, second.version])


def test_push_model_without_saved_model_pb_raises_naming_the_dir(tmp_path, base_dir):
    not_a_model = tmp_path / "not_a_model"
    (not_a_model / "variables").mkdir(parents=True)

    with pytest.raises(ValueError, match=re.escape(str(not_a_model))):
        pusher_executor.push_model(str(not_a_model), base_dir, "uri://model/1")


def _fail_copy_midway(monkeypatch) -> None:
    """Makes the executor's copytree copy saved_model.pb only, then fail."""

    def partial_copytree(source, destination, dirs_exist_ok=False):
        os.makedirs(destination, exist_ok=dirs_exist_ok)
        shutil.copyfile(
            os.path.join(source, "saved_model.pb"), os.path.join(destination, "saved_model.pb")
        )
        raise OSError("disk full")

    monkeypatch.setattr(pusher_executor.shutil, "copytree", partial_copytree)


def test_push_model_failing_midway_leaves_no_partial_version(
    model_dir, base_dir, monkeypatch, frozen_clock
):
    earlier = pusher_executor.push_model(model_dir, base_dir, "uri://model/1")
    earlier_files = snapshot(earlier.path)
    _fail_copy_midway(monkeypatch)

    with pytest.raises(OSError, match="disk full"):
        pusher_executor.push_model(model_dir, base_dir, "uri://model/2")

    assert os.listdir(base_dir) == [earlier.version]
    assert snapshot(earlier.path) == earlier_files


def test_push_model_failing_midway_removes_the_staging_folder(model_dir, base_dir, monkeypatch):
    _fail_copy_midway(monkeypatch)

    with pytest.raises(OSError, match="disk full"):
        pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    assert not [name for name in os.listdir(base_dir) if name.startswith(".staging-")]
    assert pusher_executor.existing_versions(base_dir) == []


def test_existing_versions_lists_numeric_folders_in_numeric_order(tmp_path):
    for name in ("12", "3", "100", "latest", "v4", ".staging-20-abc"):
        (tmp_path / name).mkdir()

    assert pusher_executor.existing_versions(str(tmp_path)) == [3, 12, 100]


def test_existing_versions_of_a_missing_base_dir_is_empty(tmp_path):
    assert pusher_executor.existing_versions(str(tmp_path / "missing")) == []


def test_find_pushed_returns_none_for_a_source_never_pushed(model_dir, base_dir):
    pusher_executor.push_model(model_dir, base_dir, "uri://model/1")

    assert pusher_executor.find_pushed(base_dir, "uri://model/2") is None


def _executor_inputs(tmp_path, blessed: int):
    """Real TFX artifacts: a Trainer-style model, a blessing and the PushedModel output."""
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "Trainer" / "model" / "7")
    _make_saved_model(path_utils.serving_model_path(model.uri))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "Evaluator" / "blessing" / "8")
    blessing.set_int_custom_property("blessed", blessed)
    pushed_model = standard_artifacts.PushedModel()
    pushed_model.uri = str(tmp_path / "Pusher" / "pushed_model" / "9")
    input_dict = {"model": [model], "model_blessing": [blessing]}
    output_dict = {"pushed_model": [pushed_model]}
    return input_dict, output_dict, pushed_model


def _exec_properties(base_directory: str) -> dict[str, str]:
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_directory)
    )
    return {"push_destination": proto_utils.proto_to_json(destination)}


def test_executor_pushes_a_blessed_model_and_marks_it_pushed(tmp_path, base_dir):
    input_dict, output_dict, pushed_model = _executor_inputs(tmp_path, blessed=1)

    pusher_executor.Executor().Do(input_dict, output_dict, _exec_properties(base_dir))

    version = pushed_model.get_string_custom_property("pushed_version")
    assert pushed_model.get_int_custom_property("pushed") == 1
    assert os.listdir(base_dir) == [version]
    assert pushed_model.get_string_custom_property("pushed_destination") == os.path.join(
        base_dir, version
    )
    assert snapshot(pushed_model.uri) == MODEL_FILES


def test_executor_does_not_push_a_model_that_is_not_blessed(tmp_path, base_dir):
    input_dict, output_dict, pushed_model = _executor_inputs(tmp_path, blessed=0)

    pusher_executor.Executor().Do(input_dict, output_dict, _exec_properties(base_dir))

    assert pushed_model.get_int_custom_property("pushed") == 0
    assert not os.path.exists(base_dir)


def test_executor_reports_the_existing_version_when_the_model_is_pushed_again(tmp_path, base_dir):
    input_dict, output_dict, first_push = _executor_inputs(tmp_path, blessed=1)
    pusher_executor.Executor().Do(input_dict, output_dict, _exec_properties(base_dir))
    second_push = standard_artifacts.PushedModel()
    second_push.uri = str(tmp_path / "Pusher" / "pushed_model" / "10")

    pusher_executor.Executor().Do(
        input_dict, {"pushed_model": [second_push]}, _exec_properties(base_dir)
    )

    version = first_push.get_string_custom_property("pushed_version")
    assert second_push.get_int_custom_property("pushed") == 1
    assert second_push.get_string_custom_property("pushed_version") == version
    assert os.listdir(base_dir) == [version]


# Pushes to an object store: TensorFlow's in-memory `ram://` file system and `s3://` on a local
# S3 server (tests/object_stores.py) stand in for gs:// and s3:// (both are reached only through
# tf.io.gfile, and have no atomic folder rename either).
@pytest.fixture(params=object_stores.KINDS)
def store_base(request) -> str:
    import tensorflow as tf

    uri = object_stores.folder(
        request.param, f"pusher/{request.node.originalname}", request.session
    )
    yield f"{uri}/serving/digits_cnn"
    if tf.io.gfile.exists(uri):
        pusher_executor._remove_tree(uri)


def _store_snapshot(folder: str) -> dict[str, bytes]:
    import tensorflow as tf

    files = {}
    for directory, _, names in tf.io.gfile.walk(folder):
        for name in names:
            # ram:// lists `assets.extra/x` under `assets/` too, as a file `.extra`: skip it.
            if not tf.io.gfile.exists(f"{directory}/{name}"):
                continue
            with tf.io.gfile.GFile(f"{directory}/{name}", "rb") as handle:
                files[f"{directory}/{name}"[len(folder) + 1 :]] = handle.read()
    return files


def test_push_to_an_object_store_publishes_every_file_and_no_staging(model_dir, store_base):
    import tensorflow as tf

    push = pusher_executor.push_model(model_dir, store_base, "uri://model/1")

    assert push.copied is True
    assert push.path == f"{store_base}/{push.version}"
    assert [name.rstrip("/") for name in tf.io.gfile.listdir(store_base)] == [push.version]
    pushed_files = _store_snapshot(push.path)
    record = json.loads(pushed_files.pop(PUSH_RECORD))
    assert record == {"source_uri": "uri://model/1", "version": push.version}
    assert pushed_files == MODEL_FILES


def test_push_to_an_object_store_again_reuses_the_version_and_a_new_model_gets_a_larger_one(
    model_dir, store_base, frozen_clock
):
    first = pusher_executor.push_model(model_dir, store_base, "uri://model/1")

    again = pusher_executor.push_model(model_dir, store_base, "uri://model/1")
    second = pusher_executor.push_model(model_dir, store_base, "uri://model/2")

    assert again == pusher_executor.Push(version=first.version, path=first.path, copied=False)
    assert int(second.version) == int(first.version) + 1
    assert pusher_executor.existing_versions(store_base) == [
        int(first.version),
        int(second.version),
    ]


def test_push_from_a_model_on_an_object_store(model_dir, store_base):
    import tensorflow as tf

    stored_model = f"{store_base}-source/model"
    for relative, content in MODEL_FILES.items():
        tf.io.gfile.makedirs(os.path.dirname(f"{stored_model}/{relative}"))
        with tf.io.gfile.GFile(f"{stored_model}/{relative}", "wb") as handle:
            handle.write(content)

    push = pusher_executor.push_model(stored_model, store_base, "uri://model/1")

    pushed_files = _store_snapshot(push.path)
    pushed_files.pop(PUSH_RECORD)
    assert pushed_files == MODEL_FILES


def test_push_to_an_object_store_copies_saved_model_pb_after_its_files_and_the_record_last(
    model_dir, store_base, monkeypatch
):
    import tensorflow as tf

    copied_into_versions = []
    copy = tf.io.gfile.copy

    def recording_copy(source, destination, overwrite=False):
        if ".staging-" not in destination:
            copied_into_versions.append(destination[len(store_base) + 1 :].split("/", 1)[1])
        copy(source, destination, overwrite=overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", recording_copy)

    pusher_executor.push_model(model_dir, store_base, "uri://model/1")

    assert sorted(copied_into_versions) == sorted([*MODEL_FILES, PUSH_RECORD])
    assert copied_into_versions[-2:] == ["saved_model.pb", PUSH_RECORD]


def test_push_to_an_object_store_failing_while_copying_leaves_no_version(
    model_dir, store_base, monkeypatch
):
    import tensorflow as tf

    earlier = pusher_executor.push_model(model_dir, store_base, "uri://model/1")
    earlier_files = _store_snapshot(earlier.path)
    copy = tf.io.gfile.copy

    def failing_copy(source, destination, overwrite=False):
        if ".staging-" not in destination and destination.endswith("saved_model.pb"):
            raise tf.errors.UnavailableError(None, None, "connection reset")
        copy(source, destination, overwrite=overwrite)

    monkeypatch.setattr(tf.io.gfile, "copy", failing_copy)

    with pytest.raises(tf.errors.UnavailableError, match="connection reset"):
        pusher_executor.push_model(model_dir, store_base, "uri://model/2")

    assert [name.rstrip("/") for name in tf.io.gfile.listdir(store_base)] == [earlier.version]
    assert _store_snapshot(earlier.path) == earlier_files


def test_publication_order_puts_saved_model_pb_then_the_record_last():
    files = [PUSH_RECORD, "saved_model.pb", "variables/variables.index", "fingerprint.pb"]

    assert pusher_executor.publication_order(files) == [
        "fingerprint.pb",
        "variables/variables.index",
        "saved_model.pb",
        PUSH_RECORD,
    ]
