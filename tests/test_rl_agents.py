"""Agents: the tabular, DQN and REINFORCE updates, learning where it is fast to check, seeds."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from models import registry
from models.rl import common, dqn, environments, qlearning, reinforce, training, tuning
from models.rl.settings import AgentSettings

CARTPOLE = environments.get_environment("cartpole")
FROZENLAKE = environments.get_environment("frozenlake")
# Without slipping, the 4x4 lake has one shortest path of 6 steps: Q-learning finds it fast.
STILL_LAKE = FROZENLAKE.with_kwargs(is_slippery=False)
AGENTS = {"dqn": CARTPOLE, "reinforce": CARTPOLE, "qlearning": FROZENLAKE}


def _greedy(agent, model, spec):
    serve = registry.get_family(agent).model_signatures(model, spec)["serving_default"]
    return lambda observations: serve(tf.constant(observations))["actions"].numpy()


def test_linear_schedule_goes_from_start_to_end_then_stays():
    schedule = common.LinearSchedule(1.0, 0.1, 10)
    assert [schedule(step) for step in (0, 5, 10, 50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


@pytest.mark.slow
def test_qlearning_solves_the_still_lake_and_stops_at_the_target():
    result = qlearning.train(STILL_LAKE, episodes=2000, seed=0, hyperparameters={}, target=0.9)
    assert result.solved_at is not None and result.solved_at < 2000
    assert len(result.returns) == result.solved_at
    returns = environments.evaluate(
        STILL_LAKE, _greedy("qlearning", result.model, STILL_LAKE), 5, 0
    )
    assert returns == [1.0] * 5


@pytest.mark.slow
def test_qlearning_defaults_learn_the_slippery_lakes_best_policy_and_are_blessed():
    result = qlearning.train(
        FROZENLAKE,
        episodes=qlearning.DEFAULT_EPISODES,
        seed=0,
        hyperparameters={},
        target=FROZENLAKE.reward_threshold,
    )
    table = result.model.get_layer("q_table").get_weights()[0]
    # Value iteration's policy (any discount >= 0.99) moves up from the start row's third
    # state; a short-horizon discount moves left there, which succeeds less often.
    assert table[2].argmax() == 3
    returns = environments.evaluate(
        FROZENLAKE, _greedy("qlearning", result.model, FROZENLAKE), 1000, 1000
    )
    assert np.mean(returns) >= FROZENLAKE.reward_threshold


def test_qlearning_table_holds_the_discounted_value_of_the_path():
    result = qlearning.train(
        STILL_LAKE,
        episodes=1500,
        seed=0,
        hyperparameters={"discount": 0.9, "initial_discount": 0.9, "final_learning_rate": 0.5},
    )
    table = result.model.get_layer("q_table").get_weights()[0]
    # The start is 6 steps from the goal: its best action is worth 0.9 ** 5.
    assert table[0].max() == pytest.approx(0.9**5, abs=0.02)


@pytest.mark.slow
def test_same_seed_same_returns_other_seed_other_returns():
    hyperparameters = {"warmup_steps": 20, "batch_size": 16, "units": 16}
    first = dqn.train(CARTPOLE, episodes=5, seed=3, hyperparameters=hyperparameters)
    again = dqn.train(CARTPOLE, episodes=5, seed=3, hyperparameters=hyperparameters)
    other = dqn.train(CARTPOLE, episodes=5, seed=4, hyperparameters=hyperparameters)
    assert first.returns == again.returns
    assert first.returns != other.returns
    for weights, repeated in zip(first.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(weights, repeated)
    policy = [reinforce.train(CARTPOLE, episodes=3, seed=1, hyperparameters={}) for _ in range(2)]
    assert policy[0].returns == policy[1].returns
    tabular = [
        qlearning.train(FROZENLAKE, episodes=300, seed=2, hyperparameters={}) for _ in range(2)
    ]
    assert tabular[0].returns == tabular[1].returns


def test_replay_buffer_overwrites_the_oldest_and_samples_stored_transitions():
    buffer = dqn.ReplayBuffer(capacity=3, observation_size=2)
    for step in range(5):
        buffer.add(np.full(2, step), step, float(step), np.full(2, step + 1), step == 4)
    assert len(buffer) == 3
    assert sorted(buffer.actions) == [2, 3, 4]
    observations, actions, rewards, next_observations, terminated = buffer.sample(
        64, np.random.default_rng(0)
    )
    assert set(actions) == {2, 3, 4}
    np.testing.assert_array_equal(observations[:, 0], actions)
    np.testing.assert_array_equal(rewards, actions)
    np.testing.assert_array_equal(next_observations[:, 0], actions + 1)
    np.testing.assert_array_equal(terminated, actions == 4)


def test_empty_replay_buffer_cannot_be_sampled():
    with pytest.raises(ValueError, match="found none"):
        dqn.ReplayBuffer(4, 2).sample(1, np.random.default_rng(0))


def test_td_targets_of_dqn_and_double_dqn():
    rewards = tf.constant([1.0, 1.0])
    terminated = tf.constant([0.0, 1.0])
    next_online = tf.constant([[1.0, 5.0], [1.0, 5.0]])
    next_target = tf.constant([[3.0, 2.0], [3.0, 2.0]])
    vanilla = dqn.td_targets(rewards, terminated, next_online, next_target, 0.5, False)
    double = dqn.td_targets(rewards, terminated, next_online, next_target, 0.5, True)
    # DQN: max of the target network (3); Double DQN: the target's value (2) of the online
    # network's choice (action 1). A terminated transition does not bootstrap.
    np.testing.assert_allclose(vanilla.numpy(), [1.0 + 0.5 * 3.0, 1.0])
    np.testing.assert_allclose(double.numpy(), [1.0 + 0.5 * 2.0, 1.0])


def test_dqn_step_moves_the_taken_q_value_towards_its_target_and_not_the_target_network():
    online = dqn.make_model(CARTPOLE, units=8, learning_rate=0.01)
    target = dqn.make_model(CARTPOLE, units=8, learning_rate=0.01, seed=1)
    target_before = [weight.copy() for weight in target.get_weights()]
    step = dqn.make_train_step(online, target, discount=0.0, double_dqn=True)
    observations = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    actions = np.array([0, 1, 0, 1], np.int32)
    rewards = np.full(4, 10.0, np.float32)
    losses = [
        float(step(observations, actions, rewards, observations, np.zeros(4, np.float32)))
        for _ in range(30)
    ]
    assert losses[-1] < losses[0]
    for weight, before in zip(target.get_weights(), target_before, strict=True):
        np.testing.assert_array_equal(weight, before)


def test_target_update_copies_or_blends_the_online_weights():
    online = dqn.make_model(CARTPOLE, units=4)
    target = dqn.make_model(CARTPOLE, units=4, seed=7)
    start = [weight.copy() for weight in target.get_weights()]
    dqn.make_target_update(online, target, 0.25)()
    for blended, old, new in zip(target.get_weights(), start, online.get_weights(), strict=True):
        np.testing.assert_allclose(blended, 0.25 * new + 0.75 * old, rtol=1e-6)
    dqn.make_target_update(online, target, 1.0)()
    for copied, new in zip(target.get_weights(), online.get_weights(), strict=True):
        np.testing.assert_allclose(copied, new)


def test_discounted_returns():
    np.testing.assert_allclose(
        reinforce.discounted_returns(np.array([1.0, 1.0, 1.0]), 0.5), [1.75, 1.5, 1.0]
    )


def test_reinforce_update_makes_the_advantaged_action_more_likely():
    policy = reinforce.make_model(CARTPOLE, units=8, learning_rate=0.05)
    value = common.dense_network(
        4, 1, num_layers=1, units=8, output_activation=None, name="value", seed=0
    )
    value.compile(optimizer="adam", loss="huber")
    update = reinforce.make_update(policy, value, normalize_advantages=True)
    observations = np.zeros((4, 4), np.float32)
    # Action 1 was followed by large returns, action 0 by small ones.
    actions = np.array([1, 0, 1, 0], np.int32)
    returns = np.array([10.0, 0.0, 10.0, 0.0], np.float32)
    before = policy(observations[:1]).numpy()[0, 1]
    for _ in range(10):
        update(observations, actions, returns)
    assert policy(observations[:1]).numpy()[0, 1] > before


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_family_surface(agent):
    spec = AGENTS[agent]
    module = registry.get_family(agent)
    assert registry.get_card(agent).task == spec.name
    model = module.build_model(keras_tuner.HyperParameters(), spec)
    inputs, targets = module.sample_batch(spec, 8, seed=0)
    before = [weight.copy() for weight in model.get_weights()]
    assert np.isfinite(model.train_on_batch(inputs, targets))
    assert any(
        not np.allclose(old, new) for old, new in zip(before, model.get_weights(), strict=True)
    )
    serve = module.model_signatures(model, spec)["serving_default"]
    outputs = serve(tf.zeros([3, spec.observation_size]))
    assert outputs["actions"].dtype == tf.int64 and outputs["actions"].shape == (3,)
    (values,) = [outputs[key] for key in outputs if key != "actions"]
    assert values.shape == (3, spec.num_actions)


def test_unknown_hyperparameter_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"received \['epsilon'\]") as error:
        dqn.train(CARTPOLE, episodes=1, seed=0, hyperparameters={"epsilon": 0.1})
    assert "final_epsilon" in str(error.value)


def test_agent_settings_round_trip_and_refuse_what_is_not_an_agent():
    settings = AgentSettings(agent="dqn", episodes=5, hyperparameters={"units": 64})
    assert AgentSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match=r"Expected an agent in \['dqn', 'qlearning', 'reinforce'"):
        AgentSettings(agent="cnn")
    with pytest.raises(ValueError, match="Expected agent settings among"):
        AgentSettings.from_dict({"agent": "dqn", "gamma": 0.9})
    with pytest.raises(ValueError, match="Expected episodes to be a int"):
        AgentSettings(episodes=2.5)


def test_training_defaults_and_the_agent_environment_check():
    settings = AgentSettings(agent="qlearning")
    assert training.training_episodes(settings) == qlearning.DEFAULT_EPISODES
    assert training.evaluation_episodes(settings, FROZENLAKE) == 1000
    assert training.reward_threshold(settings, FROZENLAKE) == pytest.approx(0.70)
    assert training.reward_threshold(AgentSettings(agent="dqn"), CARTPOLE) == 475
    with pytest.raises(ValueError, match="Expected an agent for 'cartpole'"):
        training.train_agent(settings, CARTPOLE)


def test_tuner_searches_the_agent_space_and_keeps_fixed_values(tmp_path):
    best = tuning.random_search(
        "qlearning",
        STILL_LAKE,
        trials=3,
        episodes=200,
        scored_episodes=50,
        seed=0,
        directory=str(tmp_path),
        fixed={"discount": 0.95},
    )
    assert best.get("discount") == 0.95
    assert 0.01 <= best.get("learning_rate") <= 0.5
