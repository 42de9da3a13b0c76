from gitrepo import Repo, user_state


def test_snapshot_leaves_user_state_unchanged(repo: Repo) -> None:
    repo.write("pkg/model.py", "VERSION = 2\n")
    repo.write("notes.txt", "untracked\n")
    before = user_state(repo.path)
    out = repo.snapshot_json()
    assert out["dirty"] is True
    assert user_state(repo.path) == before
