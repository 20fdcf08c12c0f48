"""`preflight completion bash|zsh|fish`: a completion script generated from the command tree."""

from __future__ import annotations

import argparse

from preflight.sdk.cli._core import Context, Noun, Verb


def _tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """Each command path's words: its subcommands and options."""
    words: list[str] = []
    found: dict[tuple[str, ...], list[str]] = {}
    for action in parser._actions:
        words.extend(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words.append(name)
                found |= _tree(sub, (*path, name))
    found[path] = sorted(set(words))
    return found


def script(shell: str, root: argparse.ArgumentParser) -> str:
    tree = _tree(root)
    if shell == "fish":
        lines = []
        for path, words in sorted(tree.items()):
            condition = f"__fish_seen_subcommand_from {path[-1]}" if path else "__fish_use_subcommand"
            subcommands = [w for w in words if not w.startswith("-")]
            options = [w.removeprefix("--") for w in words if w.startswith("-")]
            if subcommands:
                lines.append(f"complete -c preflight -f -n '{condition}' -a '{' '.join(subcommands)}'")
            lines.extend(f"complete -c preflight -n '{condition}' -l {o}" for o in options)
        return "\n".join(lines) + "\n"
    cases = "\n".join(
        f'        "{" ".join(path)}") words="{" ".join(words)}" ;;' for path, words in sorted(tree.items())
    )
    body = f"""_preflight() {{
    local i path="" words cur="${{COMP_WORDS[COMP_CWORD]}}"
    for ((i = 1; i < COMP_CWORD; i++)); do
        local next="${{path:+$path }}${{COMP_WORDS[i]}}"
        case "${{COMP_WORDS[i]}}" in -*) ;; *) [[ -n "$(_preflight_words "$next")" ]] && path="$next" ;; esac
    done
    COMPREPLY=($(compgen -W "$(_preflight_words "$path")" -- "$cur"))
}}
_preflight_words() {{
    case "$1" in
{cases}
        *) words="" ;;
    esac
    echo "$words"
}}
"""
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + body + "complete -F _preflight preflight\n"
    return body + "complete -F _preflight preflight\n"


def _completion(ctx: Context, args: argparse.Namespace) -> None:
    from preflight.sdk.cli import parser

    ctx.out.write(script(args.shell, parser()))


COMPLETION = Noun(
    "completion",
    "shell completion",
    tuple(
        Verb(
            shell,
            f"the {shell} completion script",
            example,
            _completion,
            lambda p, shell=shell: p.set_defaults(shell=shell),  # type: ignore[misc]
        )
        for shell, example in (
            ("bash", "source <(preflight completion bash)"),
            ("zsh", "source <(preflight completion zsh)"),
            ("fish", "preflight completion fish > ~/.config/fish/completions/preflight.fish"),
        )
    ),
)
