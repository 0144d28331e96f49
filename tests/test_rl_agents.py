"""Agents: the tabular, DQN, REINFORCE and actor-critic updates, learning where it is fast to
check, seeds."""

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from models import registry
from models.keras_lib import keras
from models.rl import (
    actor_critic,
    common,
    dqn,
    environments,
    export,
    qlearning,
    reinforce,
    training,
    tuning,
)
from models.rl.settings import AgentSettings

CARTPOLE = environments.get_environment("cartpole")
FROZENLAKE = environments.get_environment("frozenlake")
# Without slipping, the 4x4 lake has one shortest path of 6 steps: Q-learning finds it fast.
STILL_LAKE = FROZENLAKE.with_kwargs(is_slippery=False)
# Episodes after which the actor-critic clearly beats a random policy (seed 0).
EPISODES_TO_LEARN = 300
AGENTS = {
    "dqn": CARTPOLE,
    "reinforce": CARTPOLE,
    "actor_critic": CARTPOLE,
    "qlearning": FROZENLAKE,
}


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
        buffer.add(np.full(2, step), step, float(step), np.full(2, step + 1), step == 4, step / 8)
    assert len(buffer) == 3
    assert sorted(buffer.actions) == [2, 3, 4]
    observations, actions, rewards, next_observations, terminated, discounts = buffer.sample(
        64, np.random.default_rng(0)
    )
    assert set(actions) == {2, 3, 4}
    np.testing.assert_array_equal(observations[:, 0], actions)
    np.testing.assert_array_equal(rewards, actions)
    np.testing.assert_array_equal(next_observations[:, 0], actions + 1)
    np.testing.assert_array_equal(terminated, actions == 4)
    np.testing.assert_array_equal(discounts, actions / 8)


def test_empty_replay_buffer_cannot_be_sampled():
    with pytest.raises(ValueError, match="found none"):
        dqn.ReplayBuffer(4, 2).sample(1, np.random.default_rng(0))


def _push_episode(window, rewards, *, terminated):
    """Pushes one episode (observation t is [t], action t is t % 2); returns what it completes."""
    completed = []
    for step, reward in enumerate(rewards):
        last = step == len(rewards) - 1
        completed += window.push(
            np.array([step], np.float32),
            step % 2,
            reward,
            np.array([step + 1], np.float32),
            terminated and last,
            not terminated and last,
        )
    return [
        (float(observation[0]), action, total, float(after[0]), ended, discount)
        for observation, action, total, after, ended, discount in completed
    ]


def test_n_step_transitions_sum_discounted_rewards_and_shorten_at_a_termination():
    window = dqn.NStepWindow(steps=3, discount=0.5)
    transitions = _push_episode(window, [1.0, 2.0, 3.0, 4.0], terminated=True)
    # (start, action, return, end observation, terminated, discount of the end's value)
    assert transitions == [
        (0.0, 0, 1 + 0.5 * 2 + 0.25 * 3, 3.0, False, 0.125),
        (1.0, 1, 2 + 0.5 * 3 + 0.25 * 4, 4.0, True, 0.125),
        (2.0, 0, 3 + 0.5 * 4, 4.0, True, 0.25),
        (3.0, 1, 4.0, 4.0, True, 0.5),
    ]


def test_a_truncated_n_step_window_bootstraps_and_never_crosses_into_the_next_episode():
    window = dqn.NStepWindow(steps=3, discount=0.5)
    truncated = _push_episode(window, [1.0, 1.0], terminated=False)
    # A time limit is not a terminal state: both transitions bootstrap from the last
    # observation, discounted by the steps they span.
    assert truncated == [(0.0, 0, 1.5, 2.0, False, 0.25), (1.0, 1, 1.0, 2.0, False, 0.5)]
    assert not window.pending
    # The next episode's first window holds its own steps only.
    following = _push_episode(window, [5.0, 5.0, 5.0], terminated=True)
    assert following[0] == (0.0, 0, 5 + 2.5 + 1.25, 3.0, True, 0.125)
    assert len(following) == 3


def test_n_step_td_targets_of_a_sampled_buffer_match_the_hand_computed_ones():
    window = dqn.NStepWindow(steps=2, discount=0.9)
    buffer = dqn.ReplayBuffer(capacity=8, observation_size=1)
    for transition in window.push(np.zeros(1), 0, 1.0, np.ones(1), False, False):
        buffer.add(*transition)
    for transition in window.push(np.ones(1), 1, 2.0, np.full(1, 2.0), False, True):
        buffer.add(*transition)
    observations, _, rewards, next_observations, terminated, discounts = buffer.sample(
        16, np.random.default_rng(0)
    )
    # Both windows end in state 2 (the second one truncated there).
    np.testing.assert_array_equal(next_observations[:, 0], 2.0)
    # The next state's values are 10 (state 2), whichever network; nothing is terminal.
    next_q = tf.fill([16, 2], 10.0)
    targets = dqn.td_targets(rewards, terminated, discounts, next_q, next_q, True).numpy()
    expected = {0.0: 1.0 + 0.9 * 2.0 + 0.81 * 10.0, 1.0: 2.0 + 0.9 * 10.0}
    np.testing.assert_allclose(targets, [expected[value] for value in observations[:, 0]])
    assert set(observations[:, 0]) == {0.0, 1.0}


def test_td_targets_of_dqn_and_double_dqn():
    rewards = tf.constant([1.0, 1.0])
    terminated = tf.constant([0.0, 1.0])
    discounts = tf.constant([0.5, 0.5])
    next_online = tf.constant([[1.0, 5.0], [1.0, 5.0]])
    next_target = tf.constant([[3.0, 2.0], [3.0, 2.0]])
    vanilla = dqn.td_targets(rewards, terminated, discounts, next_online, next_target, False)
    double = dqn.td_targets(rewards, terminated, discounts, next_online, next_target, True)
    # DQN: max of the target network (3); Double DQN: the target's value (2) of the online
    # network's choice (action 1). A terminated transition does not bootstrap.
    np.testing.assert_allclose(vanilla.numpy(), [1.0 + 0.5 * 3.0, 1.0])
    np.testing.assert_allclose(double.numpy(), [1.0 + 0.5 * 2.0, 1.0])


def test_dueling_head_gives_one_q_value_per_action_around_the_state_value():
    model = dqn.make_model(CARTPOLE, units=8, dueling=True)
    observations = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    q_values = model(observations).numpy()
    assert q_values.shape == (5, CARTPOLE.num_actions)
    streams = keras.Model(model.input, model.get_layer("outputs").output)(observations)
    value, advantages = streams[:, 0].numpy(), streams[:, 1:].numpy()
    # The advantages are centred: Q averages to the value, and differs by the advantages.
    np.testing.assert_allclose(q_values.mean(axis=1), value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        q_values[:, 1] - q_values[:, 0], advantages[:, 1] - advantages[:, 0], rtol=1e-5, atol=1e-6
    )


def test_dqn_step_moves_the_taken_q_value_towards_its_target_and_not_the_target_network():
    online = dqn.make_model(CARTPOLE, units=8, learning_rate=0.01)
    target = dqn.make_model(CARTPOLE, units=8, learning_rate=0.01, seed=1)
    target_before = [weight.copy() for weight in target.get_weights()]
    step = dqn.make_train_step(online, target, double_dqn=True)
    observations = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    actions = np.array([0, 1, 0, 1], np.int32)
    rewards = np.full(4, 10.0, np.float32)
    zeros = np.zeros(4, np.float32)
    losses = []
    for _ in range(30):
        loss, greedy = step(
            observations, actions, rewards, observations, zeros, zeros, observations[:1]
        )
        losses.append(float(loss))
        # The greedy action comes from the weights after the step.
        assert int(greedy) == online(observations[:1]).numpy()[0].argmax()
    assert losses[-1] < losses[0]
    for weight, before in zip(target.get_weights(), target_before, strict=True):
        np.testing.assert_array_equal(weight, before)


def test_dueling_policy_serves_the_same_actions_from_its_savedmodel_and_tflite(tmp_path):
    model = dqn.make_model(CARTPOLE, units=8, dueling=True, seed=3)
    path = str(tmp_path / "policy")
    export.export_policy("dqn", model, CARTPOLE, path)
    observations = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    expected = model(observations).numpy().argmax(axis=1)
    assert len(set(expected)) == 2
    np.testing.assert_array_equal(export.saved_model_policy(path)(observations), expected)
    tflite = export.tflite_policy(export.convert_to_tflite(path))
    np.testing.assert_array_equal(tflite(observations), expected)


def test_gradient_steps_per_environment_step_after_the_warmup():
    result = dqn.train(
        CARTPOLE,
        episodes=2,
        seed=0,
        hyperparameters={
            "warmup_steps": 10,
            "batch_size": 8,
            "units": 8,
            "gradient_steps": 3,
            "n_step": 1,
        },
    )
    # One-step transitions: the buffer holds `warmup_steps` after step 10, and every step
    # from then on takes 3 gradient steps.
    assert int(result.model.optimizer.iterations) == 3 * (result.steps - 10 + 1)


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


def test_generalized_advantages_on_a_hand_computed_rollout():
    rewards = tf.constant([1.0, 1.0])
    values = tf.constant([0.5, 0.25])
    # delta_1 = 1 + 0.5 * 1.0 - 0.25 = 1.25; delta_0 = 1 + 0.5 * 0.25 - 0.5 = 0.625;
    # A_1 = 1.25; A_0 = 0.625 + 0.5 * 0.5 * 1.25 = 0.9375; targets = A + V.
    advantages, targets = actor_critic.generalized_advantages(
        rewards, values, tf.constant(1.0), 0.5, 0.5
    )
    np.testing.assert_allclose(advantages.numpy(), [0.9375, 1.25])
    np.testing.assert_allclose(targets.numpy(), [1.4375, 1.5])
    # lambda 0: one-step TD errors; lambda 1: the discounted return (bootstrapped) minus V.
    td, _ = actor_critic.generalized_advantages(rewards, values, tf.constant(1.0), 0.5, 0.0)
    np.testing.assert_allclose(td.numpy(), [0.625, 1.25])
    monte_carlo, returns = actor_critic.generalized_advantages(
        rewards, values, tf.constant(1.0), 0.5, 1.0
    )
    np.testing.assert_allclose(returns.numpy(), [1.0 + 0.5 * 1.5, 1.0 + 0.5 * 1.0])
    np.testing.assert_allclose(monte_carlo.numpy(), [1.75 - 0.5, 1.5 - 0.25])
    # A terminated rollout bootstraps nothing: the last target is its reward alone.
    _, terminal = actor_critic.generalized_advantages(rewards, values, tf.constant(0.0), 0.5, 0.5)
    assert terminal.numpy()[-1] == pytest.approx(1.0)


def _actor_critic_update(entropy_coefficient=0.0, learning_rate=0.05):
    policy = actor_critic.make_model(CARTPOLE, units=8, learning_rate=learning_rate)
    value = common.value_network(CARTPOLE, num_layers=1, units=8, learning_rate=0.05, seed=1)
    update = actor_critic.make_update(
        policy,
        value,
        discount=0.9,
        gae_lambda=0.95,
        entropy_coefficient=entropy_coefficient,
        normalize_advantages=False,
    )
    return policy, value, update


def test_actor_critic_update_favours_the_advantaged_action_and_fits_the_critic():
    policy, value, update = _actor_critic_update()
    observations = np.zeros((4, 4), np.float32)
    # Action 1 is rewarded, action 0 is not; the rollout terminates (nothing to bootstrap).
    actions = np.array([1, 0, 1, 0], np.int32)
    rewards = np.array([1.0, 0.0, 1.0, 0.0], np.float32)
    before = policy(observations[:1]).numpy()[0, 1]
    for _ in range(20):
        update(observations, actions, rewards, observations[:1], np.float32(0.0))
    assert policy(observations[:1]).numpy()[0, 1] > before
    # The rollout's lambda-returns are all >= 0 and V starts at 0 (zero input, zero bias).
    assert value(observations[:1]).numpy()[0, 0] > 0.1


def test_actor_critic_entropy_bonus_flattens_the_policy_without_advantages():
    observations = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    actions = np.zeros(8, np.int32)
    rewards = np.zeros(8, np.float32)

    def entropy(policy):
        probabilities = policy(observations).numpy()
        return float(-(probabilities * np.log(probabilities)).sum(axis=1).mean())

    with_bonus, _, update = _actor_critic_update(entropy_coefficient=1.0, learning_rate=0.01)
    without_bonus, _, plain_update = _actor_critic_update(learning_rate=0.01)
    for policy in (with_bonus, without_bonus):  # the same peaked start for both
        for _ in range(30):
            policy.train_on_batch(observations, actions)
    start = entropy(with_bonus)
    assert start == pytest.approx(entropy(without_bonus)) and start < 0.5
    for _ in range(20):
        update(observations, actions, rewards, observations[:1], np.float32(0.0))
        plain_update(observations, actions, rewards, observations[:1], np.float32(0.0))
    assert entropy(with_bonus) > start
    assert entropy(with_bonus) > entropy(without_bonus)


@pytest.mark.slow
def test_actor_critic_same_seed_same_returns_other_seed_other_returns():
    hyperparameters = {"units": 16, "rollout_steps": 5}
    runs = [
        actor_critic.train(CARTPOLE, episodes=4, seed=seed, hyperparameters=hyperparameters)
        for seed in (3, 3, 4)
    ]
    assert runs[0].returns == runs[1].returns
    assert runs[0].returns != runs[2].returns
    assert runs[0].steps == sum(runs[0].returns)
    for weights, repeated in zip(
        runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(weights, repeated)


@pytest.mark.slow
def test_actor_critic_learns_cartpole_far_better_than_a_random_policy():
    random_rng = np.random.default_rng(0)
    random_returns = environments.evaluate(
        CARTPOLE, lambda observations: random_rng.integers(0, 2, len(observations)), 20, 1000
    )
    result = actor_critic.train(CARTPOLE, episodes=EPISODES_TO_LEARN, seed=0, hyperparameters={})
    # The random policy lasts about 22 steps; the trained greedy policy several times longer.
    greedy = environments.evaluate(
        CARTPOLE, _greedy("actor_critic", result.model, CARTPOLE), 20, 1000
    )
    assert np.mean(random_returns) < 40
    assert np.mean(greedy) > 4 * np.mean(random_returns)
    assert np.mean(result.returns[-50:]) > 2 * np.mean(result.returns[:50])


def test_cli_and_config_accept_the_actor_critic_agent(tmp_path):
    from pipelines import cli

    arguments = cli._parser().parse_args(
        ["run", "cartpole", "--agent", "actor_critic", "--home", str(tmp_path)]
    )
    config = cli._run_config(arguments)
    assert config.trainer.family == "actor_critic"
    assert config.pipeline_name == "cartpole_actor_critic"
    # The pipeline's agent settings name the family (pipelines.rl.agent_settings).
    settings = AgentSettings.from_dict({**config.agent.to_dict(), "agent": "actor_critic"})
    assert training.training_episodes(settings) == actor_critic.DEFAULT_EPISODES
    with pytest.raises(ValueError, match="Expected a model family of pipeline 'frozenlake'"):
        cli._run_config(
            cli._parser().parse_args(
                ["run", "frozenlake", "--agent", "actor_critic", "--home", str(tmp_path)]
            )
        )


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
    with pytest.raises(
        ValueError, match=r"Expected an agent in \['actor_critic', 'dqn', 'qlearning', 'reinforce'"
    ):
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
