from icrl.config import DarkRoomConfig, TasksConfig
from icrl.envs import HELDOUT, TRAIN, Task, make_family, split_tasks


def test_task_id_is_a_stable_content_hash():
    a = Task("DarkRoom-v0", {"size": 9, "episode_length": 20, "goal": [1, 2]})
    b = Task("DarkRoom-v0", {"goal": [1, 2], "episode_length": 20, "size": 9}, split=HELDOUT)
    c = Task("DarkRoom-v0", {"size": 9, "episode_length": 20, "goal": [2, 1]})
    assert a.task_id == b.task_id  # key order and split do not matter
    assert a.task_id != c.task_id
    assert a.spec_hash.startswith(a.task_id) and len(a.spec_hash) == 64


def test_split_is_seeded_and_holds_out_the_requested_number():
    family = make_family(DarkRoomConfig(), TasksConfig(heldout=16, split_seed=0))
    again = make_family(DarkRoomConfig(), TasksConfig(heldout=16, split_seed=0))
    other = make_family(DarkRoomConfig(), TasksConfig(heldout=16, split_seed=1))
    assert len(family.tasks) == 81 and len(family.heldout) == 16 and len(family.train) == 65
    assert [t.task_id for t in family.heldout] == [t.task_id for t in again.heldout]
    assert {t.task_id for t in family.heldout} != {t.task_id for t in other.heldout}
    assert len({t.task_id for t in family.tasks}) == 81


def test_split_refuses_to_hold_out_everything():
    tasks = [Task("x", {"i": i}) for i in range(3)]
    try:
        split_tasks(tasks, heldout=3, seed=0)
    except ValueError as err:
        assert "3 of 3" in str(err)
    else:
        raise AssertionError("expected a ValueError")
    assert [t.split for t in split_tasks(tasks, heldout=0, seed=0)] == [TRAIN] * 3
