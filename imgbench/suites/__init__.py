"""Published prompt suites and verified single files, read from a local copy, the cache or the official URL.

`fetch` finds the files (IMGBENCH_DATA_DIR / --data-dir, IMGBENCH_CACHE, download), `parsers` turns
suite layouts into prompts, `lists` serves verified lists such as IMG's question templates.
Nothing here imports torch.
"""

from imgbench.suites.lists import LISTS, load_list, load_template_list

__all__ = ["LISTS", "load_list", "load_template_list"]
