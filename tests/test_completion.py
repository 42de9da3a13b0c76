"""`git slurm-* <TAB>` through git's own completion: bash's (git's completion script calling
`_git_slurm_snapshot`) and zsh's (`_git` calling `_git-slurm-snapshot`), in real shells."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from gitrepo import ROOT, Repo
from needs import unavailable

GIT_BASH_COMPLETION = Path("/usr/share/bash-completion/completions/git")
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")

# What bash does on TAB: COMP_* set, then the function `complete -p git` names is called with
# the command, the current word and the previous one, and COMPREPLY is offered.
BASH_TAB = r"""
source /usr/share/bash-completion/bash_completion
source /usr/share/bash-completion/completions/git
eval "$SETUP"
COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"; [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
spec=$(complete -p git); func=${spec##*-F }; func=${func%% *}
"$func" git "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""

# zsh completes only inside its line editor: drive an interactive zsh on a pseudo-terminal
# (zpty, as zsh's own completion tests do), type the line and TAB twice to list the matches --
# once the line editor is up: its prompt, which the command that sets it does not echo whole.
ZSH_TAB = r"""
zmodload zsh/zpty
zpty -b z zsh -f -i
zpty -w z "PS1='%{%}REA%{%}DY> ' RPROMPT=''; $SETUP; autoload -U compinit; compinit -u -D; \
LISTMAX=1000; zstyle ':completion:*' list-prompt ''"
zpty -r z junk '*READY> *'
zpty -n -w z "$LINE"$'\t\t'
zpty -w z $'\C-e\C-u echo DONE-$((1+1))'
zpty -r z out '*DONE-2*'
print -r -- "$out"
zpty -d z
"""


def bash_tab(line: str, setup: str, cwd: Path, env: Optional[dict[str, str]] = None) -> list[str]:
    if not (GIT_BASH_COMPLETION.is_file() and BASH_COMPLETION.is_file()):
        unavailable("bash-completion is not installed (Debian: apt-get install bash-completion)")
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", BASH_TAB],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**(env or shell_env()), "SETUP": setup, "LINE": line},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def zsh_tab(line: str, setup: str, cwd: Path) -> str:
    if shutil.which("zsh") is None:
        unavailable("zsh is not installed (Debian: apt-get install zsh)")
    done = subprocess.run(
        ["zsh", "-f", "-c", ZSH_TAB],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=shell_env(SETUP=setup, LINE=line),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", done.stdout).replace("\r", "")


def shell_env(**more: str) -> dict[str, str]:
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return dict(os.environ, PATH=path, **more)


EVAL_BASH = 'eval "$(git slurm-snapshot --completions bash)"'
EVAL_ZSH = 'eval "$(git slurm-gc --completions zsh)"'


@pytest.fixture
def remote_repo(repo: Repo) -> Repo:
    repo.git("remote", "add", "cluster-mirror", "/nowhere")
    return repo


def installed_bash_dir(tmp_path: Path) -> str:
    """bash-completion's per-user directory holding the shipped files, as `pip install --user`
    puts them (~/.local/share/bash-completion/completions)."""
    where = tmp_path / "share" / "bash-completion"
    where.mkdir(parents=True)
    (where / "completions").symlink_to(ROOT / "completions" / "bash")
    return f"export XDG_DATA_HOME={tmp_path / 'share'}"


@pytest.mark.parametrize("how", ["eval", "installed"])
def test_bash_completes_options_and_their_values(
    remote_repo: Repo, tmp_path: Path, how: str
) -> None:
    setup = EVAL_BASH if how == "eval" else installed_bash_dir(tmp_path)
    cwd = remote_repo.path
    options = bash_tab("git slurm-snapshot --", setup, cwd)
    assert "--json " in options and "--link=" in options and "--install-hooks " in options
    assert bash_tab("git slurm-snapshot --no-p", setup, cwd) == ["--no-push "]
    assert bash_tab("git slurm-snapshot --remote=clu", setup, cwd) == ["cluster-mirror "]
    assert bash_tab("git slurm-gc --remote clu", setup, cwd) == ["cluster-mirror "]
    assert bash_tab("git slurm-gc --older-than=", setup, cwd) == ["30m ", "12h ", "7d ", "2w "]
    assert bash_tab("git slurm-gc --dr", setup, cwd) == ["--dry-run "]


def test_bash_lists_the_commands_and_not_the_hook_entry_point(remote_repo: Repo) -> None:
    said = bash_tab("git slurm-", EVAL_BASH, remote_repo.path)
    assert said == ["slurm-gc ", "slurm-snapshot "]


@pytest.mark.parametrize("how", ["eval", "fpath"])
def test_zsh_completes_through_git_s_completion(remote_repo: Repo, how: str) -> None:
    setup = EVAL_ZSH if how == "eval" else f"fpath=({ROOT / 'completions' / 'zsh'} $fpath)"
    if how == "eval":  # compdef needs compinit first: run it, then eval
        setup = f"autoload -U compinit; compinit -u -D; {EVAL_ZSH}"
    cwd = remote_repo.path
    listed = zsh_tab("git slurm-snapshot --", setup, cwd)
    assert re.search(r"--json +-- print exactly one JSON object", listed), listed
    assert re.search(r"--install-hooks +-- install the post-checkout reminder hook", listed)
    assert "cluster-mirror" in zsh_tab("git slurm-snapshot --remote=", setup, cwd)
    assert "git slurm-gc --dry-run" in zsh_tab("git slurm-gc --dry", setup, cwd)


def test_the_printed_script_is_what_is_shipped() -> None:
    """`--completions bash` prints the shipped files, so an eval and an install agree."""
    done = subprocess.run(
        ["git", "slurm-gc", "--completions", "bash"],
        capture_output=True,
        text=True,
        env=shell_env(),
        check=True,
    )
    shipped = [p.read_text() for p in (ROOT / "completions" / "bash").iterdir()]
    assert len(shipped) == 2 and all(text in done.stdout for text in shipped)
    assert len(done.stdout) == sum(map(len, shipped))


def test_an_unknown_shell_is_one_error_line() -> None:
    done = subprocess.run(
        ["git", "slurm-snapshot", "--completions", "fish"],
        capture_output=True,
        text=True,
        env=shell_env(),
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: --completions: no completion for 'fish' (bash or zsh)\n"
