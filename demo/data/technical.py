"""Demo families for coding, maths and science questions (the "usage" stratum); the sums are computed, not typed."""

from demo.data.pair import Pair, chat, slug

# --- Coding -----------------------------------------------------------------------------

# task, good code, a one-line explanation, a weak answer
PYTHON_TASKS = [
    (
        "reverse a list",
        "items = [1, 2, 3]\nreversed_items = items[::-1]  # [3, 2, 1]\nitems.reverse()  # in place",
        "Slicing with `[::-1]` makes a reversed copy; `list.reverse()` reverses in place and returns `None`.",
        "```python\nitems = items.reverse()\n```",
    ),
    (
        "read a file line by line",
        'with open("notes.txt", encoding="utf-8") as f:\n    for line in f:\n        print(line.rstrip("\\n"))',
        "Iterating over the file object reads one line at a time, so even huge files use little memory, and `with` "
        "closes the file for you.",
        'Use `open("notes.txt").read()` and then split it.',
    ),
    (
        "count how often each word appears in a text",
        "from collections import Counter\n\ncounts = Counter(text.lower().split())\nprint(counts.most_common(5))",
        "`Counter` does the counting; `most_common(n)` gives the top words with their counts.",
        "You need to write a loop for that.",
    ),
    (
        "sort a dictionary by its values",
        'scores = {"ana": 7, "ben": 9, "cy": 4}\nranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)\n'
        "# [('ben', 9), ('ana', 7), ('cy', 4)]",
        "`sorted` returns a list of `(key, value)` pairs; wrap it in `dict(...)` if you need a dictionary again.",
        "Dictionaries can't be sorted in Python.",
    ),
    (
        "remove duplicates from a list but keep the order",
        "items = [3, 1, 3, 2, 1]\nunique = list(dict.fromkeys(items))  # [3, 1, 2]",
        "Dictionaries keep insertion order, so `dict.fromkeys` drops repeats and keeps the first occurrence.",
        "```python\nunique = list(set(items))\n```",
    ),
    (
        "get today's date as YYYY-MM-DD",
        "from datetime import date\n\nprint(date.today().isoformat())  # e.g. 2024-05-17",
        "`isoformat()` always gives the `YYYY-MM-DD` form.",
        "Import time and print it.",
    ),
    (
        "parse a JSON string",
        'import json\n\ndata = json.loads(\'{"name": "Ada", "langs": ["en", "fr"]}\')\nprint(data["langs"][0])  # en',
        "`json.loads` turns a string into dicts and lists; use `json.load(f)` to read from a file.",
        "Use `eval()` on the string, it gives you a dictionary.",
    ),
    (
        "merge two dictionaries",
        'defaults = {"colour": "blue", "size": "M"}\nchoices = {"size": "L"}\nmerged = defaults | choices  '
        "# {'colour': 'blue', 'size': 'L'}",
        "With `|` (Python 3.9+), keys from the right-hand dictionary win.",
        "You can add them with `+`.",
    ),
    (
        "check whether a file exists",
        'from pathlib import Path\n\nif Path("report.csv").is_file():\n    print("found it")',
        "`is_file()` is true only for an existing regular file; `exists()` is also true for folders.",
        "Try to open it and if the program crashes it doesn't exist.",
    ),
    (
        "flatten a list of lists",
        "nested = [[1, 2], [3], [4, 5]]\nflat = [x for sub in nested for x in sub]  # [1, 2, 3, 4, 5]",
        "Read the comprehension left to right: for each sub-list, for each element in it.",
        "```python\nflat = list(nested)\n```",
    ),
    (
        "measure how long some code takes",
        'import time\n\nstart = time.perf_counter()\ndo_work()\nprint(f"took {time.perf_counter() - start:.3f} s")',
        "`perf_counter` is the clock meant for measuring intervals; for tiny snippets use the `timeit` module.",
        "Look at your watch before and after.",
    ),
    (
        "read a CSV file",
        'import csv\n\nwith open("people.csv", newline="", encoding="utf-8") as f:\n    for row in csv.DictReader(f):\n'
        '        print(row["name"], row["age"])',
        "`DictReader` uses the header row as keys, so you can refer to columns by name.",
        "Split each line on commas.",
    ),
    (
        "generate a random password",
        "import secrets\n\npassword = secrets.token_urlsafe(16)",
        "The `secrets` module uses a cryptographically secure source, unlike `random`.",
        "```python\nimport random\npassword = str(random.randint(1000, 9999))\n```",
    ),
    (
        "pause a program for two seconds",
        "import time\n\ntime.sleep(2)",
        "`time.sleep` takes seconds and accepts fractions, e.g. `time.sleep(0.5)`.",
        "Write a loop that counts to a big number.",
    ),
]

GIT_TASKS = [
    (
        "undo my last commit but keep the changes",
        "git reset --soft HEAD~1",
        "The commit disappears and its changes stay staged. Don't do this to a commit you've already pushed and "
        "shared; use `git revert` there instead.",
    ),
    (
        "create a new branch and switch to it",
        "git switch -c my-feature",
        "On older versions of git, `git checkout -b my-feature` does the same.",
    ),
    (
        "see what I changed in one file",
        "git diff -- path/to/file.py",
        "Add `--staged` to see changes you've already added with `git add`.",
    ),
    (
        "throw away my local changes to one file",
        "git restore path/to/file.py",
        "This cannot be undone, so check with `git diff` first.",
    ),
    (
        "rename a branch",
        "git branch -m old-name new-name",
        "If the branch is already pushed, push the new name and delete the old one on the remote.",
    ),
    (
        "see the history one line per commit",
        "git log --oneline --graph",
        "`--graph` draws the branch structure next to the commits.",
    ),
    (
        "put my changes aside for a moment",
        'git stash push -m "half-done search"\n# ... later\ngit stash pop',
        "`git stash list` shows what you've stashed.",
    ),
    (
        "fix the message of my last commit",
        'git commit --amend -m "A better message"',
        "Only amend commits you haven't pushed yet, or you'll rewrite shared history.",
    ),
]
GIT_WORSE = [
    "Delete the .git folder and clone the repository again.",
    "You can't do that in git.",
    "Use `git push --force`.",
    "Just copy your files into a new folder.",
]

ERRORS = [
    (
        "KeyError: 'email'",
        "You asked a dictionary for the key `'email'` and it doesn't have one. Check the spelling, or use "
        '`user.get("email")`, which returns `None` (or a default you pass) instead of raising.',
    ),
    (
        "IndexError: list index out of range",
        "You used a position that doesn't exist: a list of 3 items has indexes 0, 1 and 2. It often comes from a loop "
        "that runs one step too far, or from an empty list.",
    ),
    (
        "TypeError: 'NoneType' object is not subscriptable",
        "You used `[...]` on something that is `None`. Usually a function returned nothing — for example "
        "`items = items.sort()` — or a lookup found no match. Print the value just before the failing line.",
    ),
    (
        "ModuleNotFoundError: No module named 'requests'",
        "The package isn't installed in the Python you're running. Install it into that environment with "
        "`python -m pip install requests`, and make sure your virtualenv is active.",
    ),
    (
        "IndentationError: unexpected indent",
        "A line is indented more than Python expects, for example an extra space at the start, or a mix of tabs and "
        "spaces. Make the block's lines line up, using spaces only.",
    ),
    (
        "ZeroDivisionError: division by zero",
        "A division's right-hand side was 0. Check the value first (`if count:`) or decide what an empty case "
        "should return, such as 0 or `None`.",
    ),
    (
        "UnboundLocalError: cannot access local variable 'total'",
        "You assign to `total` inside a function, so Python treats it as local there, but you read it before that "
        "assignment. Pass the value in as an argument, or initialise it at the top of the function.",
    ),
]

JS_PORTS = [
    (
        "reverse a list",
        "items[::-1]",
        "const reversed = [...items].reverse();",
        "`reverse()` changes the array in place, so copy it first with the spread syntax.",
    ),
    (
        "remove duplicates from a list",
        "list(dict.fromkeys(items))",
        "const unique = [...new Set(items)];",
        "A `Set` keeps insertion order, so the first occurrence of each value stays.",
    ),
    (
        "parse a JSON string",
        "json.loads(text)",
        "const data = JSON.parse(text);",
        "`JSON.parse` throws a `SyntaxError` on invalid JSON, so wrap it in `try`/`catch` for user input.",
    ),
    (
        "sort a dictionary by value",
        "sorted(d.items(), key=lambda kv: kv[1])",
        "const ranked = Object.entries(scores).sort((a, b) => a[1] - b[1]);",
        "`Object.entries` gives `[key, value]` pairs you can sort.",
    ),
    (
        "merge two dictionaries",
        "defaults | choices",
        "const merged = { ...defaults, ...choices };",
        "Later spreads win, just like the right-hand side of `|` in Python.",
    ),
    (
        "flatten a list of lists",
        "[x for sub in nested for x in sub]",
        "const flat = nested.flat();",
        "`flat()` goes one level deep by default; pass a depth for more.",
    ),
    (
        "get today's date as YYYY-MM-DD",
        "date.today().isoformat()",
        "const today = new Date().toISOString().slice(0, 10);",
        "Careful: `toISOString` is in UTC, so near midnight it can give a different day from your local one.",
    ),
]


def coding() -> list[Pair]:
    pairs = []
    for task, code, note, weak in PYTHON_TASKS:
        pairs.append(
            Pair(
                key=f"code-py-{slug(task)}",
                category="coding",
                prompt=f"How do I {task} in Python?",
                better=f"```python\n{code}\n```\n\n{note}",
                worse=weak,
            )
        )
    for i, (task, command, note) in enumerate(GIT_TASKS):
        pairs.append(
            Pair(
                key=f"code-git-{slug(task)}",
                category="coding",
                prompt=f"How do I {task} with git?",
                better=f"```sh\n{command}\n```\n\n{note}",
                worse=GIT_WORSE[i % len(GIT_WORSE)],
            )
        )
    for error, explanation in ERRORS:
        pairs.append(
            Pair(
                key=f"code-error-{slug(error)}",
                category="coding",
                prompt=f"What does this Python error mean?\n\n```\n{error}\n```",
                better=explanation,
                worse="It means there is an error in your code. Try running it again.",
            )
        )
    for task, python, js, note in JS_PORTS:
        pairs.append(
            Pair(
                key=f"code-js-{slug(task)}",
                category="coding",
                messages=chat(
                    f"How do I {task} in Python?",
                    f"```python\n{python}\n```",
                    "How would I do the same in JavaScript?",
                ),
                better=f"```js\n{js}\n```\n\n{note}",
                worse=f"In JavaScript it's the same:\n\n```python\n{python}\n```",
            )
        )
    return pairs


# --- Maths ------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".")


PERCENTAGES = [(15, 80), (20, 65), (12.5, 240), (7, 300), (35, 120), (3, 1500), (60, 45), (18, 250)]
DRIVES = [(150, 60), (240, 80), (90, 45), (300, 100), (75, 50), (420, 70), (55, 110)]
PRIMES = [91, 97, 51, 53, 119, 127]
PRODUCTS = [(7, 8), (6, 9), (12, 11), (9, 9), (8, 4), (15, 3), (25, 4)]

EXPLANATIONS = [
    (
        "How do I calculate compound interest?",
        "Use **A = P × (1 + r)ⁿ**, where *P* is what you start with, *r* the rate per period and *n* the number of "
        "periods.\n\nExample: £1,000 at 5% a year for 3 years is 1,000 × 1.05³ ≈ **£1,157.63**. The interest itself "
        "is A − P ≈ £157.63 — more than 3 × £50, because each year's interest earns interest too.",
        "Multiply the amount by the interest rate and the number of years.",
    ),
    (
        "What's the difference between the mean and the median?",
        "The **mean** is the sum divided by how many values there are; the **median** is the middle value once "
        "they're sorted.\n\nFor 2, 3, 3, 4 and 38 the mean is 10 but the median is 3. The median barely moves when "
        "one value is extreme, which is why incomes and house prices are usually reported as medians.",
        "They're the same thing, just different names.",
    ),
    (
        "How do I work out the area of a circle?",
        "Area = **π × r²**, where *r* is the radius (half the diameter). A circle 10 cm across has r = 5 cm, so its "
        "area is π × 25 ≈ **78.5 cm²**.",
        "Area = 2 × π × r.",
    ),
    (
        "Why can't you divide by zero?",
        "Division asks *what times this gives that?* — 12 ÷ 3 = 4 because 4 × 3 = 12. For 12 ÷ 0 you'd need a "
        "number that gives 12 when multiplied by 0, and none does, since anything times 0 is 0. So the operation "
        "has no answer, and we call it undefined.",
        "You can, the answer is zero.",
    ),
    (
        "What is a standard deviation, in plain words?",
        "It's roughly the typical distance of the values from their average. Two classes can both average 70%; if "
        "one has a standard deviation of 3 points, nearly everyone scored 64–76%, while one of 15 points means the "
        "marks were spread far more widely.",
        "It's the biggest value minus the smallest.",
    ),
]


def maths() -> list[Pair]:
    pairs = []
    for pct, base in PERCENTAGES:
        answer = pct * base / 100
        pairs.append(
            Pair(
                key=f"maths-pct-{_num(pct)}-of-{base}",
                category="maths",
                prompt=f"What is {_num(pct)}% of {base}?",
                better=f"{_num(pct)}% of {base} is **{_num(answer)}** ({_num(pct)} ÷ 100 × {base} = {_num(answer)}).",
                worse=f"{_num(pct)}% of {base} is {_num(pct * base / 10)}.",
            )
        )
    for km, speed in DRIVES:
        hours = km / speed
        h, m = int(hours), round((hours - int(hours)) * 60)
        pairs.append(
            Pair(
                key=f"maths-drive-{km}-at-{speed}",
                category="maths",
                prompt=f"If I drive {km} km at an average of {speed} km/h, how long will it take?",
                better=(
                    f"Time = distance ÷ speed = {km} ÷ {speed} = {_num(hours)} hours, which is **{h} h {m} min** "
                    "— plus any stops along the way."
                ),
                worse=f"About {_num(speed / km * 60)} minutes.",
            )
        )
    for n in PRIMES:
        factor = next((d for d in range(2, int(n**0.5) + 1) if n % d == 0), None)
        if factor:
            good = f"No. {n} = {factor} × {n // factor}, so it has divisors other than 1 and itself."
            weak = f"Yes, {n} is prime because it's odd."
        else:
            good = (
                f"Yes. {n} isn't divisible by any prime up to √{n} ≈ {n**0.5:.1f} (2, 3, 5, 7…), so its only "
                "divisors are 1 and itself."
            )
            weak = f"No, {n} is not prime."
        pairs.append(
            Pair(key=f"maths-prime-{n}", category="maths", prompt=f"Is {n} a prime number?", better=good, worse=weak)
        )
    for question, good, weak in EXPLANATIONS:
        pairs.append(
            Pair(key=f"maths-explain-{slug(question)}", category="maths", prompt=question, better=good, worse=weak)
        )
    for a, b in PRODUCTS:
        pairs.append(
            Pair(
                key=f"maths-times-{a}-{b}",
                category="maths",
                prompt=f"What is {a} × {b}?",
                better=f"{a} × {b} = {a * b}.",
                worse=f"{a} × {b} = {a * b + a - 1 if a > 1 else a * b + 2}.",
                gold=True,
            )
        )
    return pairs


# --- Science ----------------------------------------------------------------------------

# question, explanation, a common misconception, a version for a child (or None)
SCIENCE = [
    (
        "Why is the sky blue?",
        "Sunlight contains every colour. As it passes through the air, molecules scatter short wavelengths (blue) much "
        "more strongly than long ones (red), so blue light reaches your eyes from every direction of the sky. At "
        "sunset the light crosses much more air, the blue is scattered away, and reds and oranges are left.",
        "The sky is blue because it reflects the colour of the oceans.",
        "Sunlight is secretly made of all the colours mixed together. When it bumps into the air, the blue bits bounce "
        "around the most, all over the sky — so wherever you look up, blue light is coming at you!",
    ),
    (
        "Why do leaves change colour in autumn?",
        "Leaves are green because of chlorophyll, which the tree uses to make food from light. In autumn, with "
        "shorter days, the tree stops making chlorophyll and breaks it down. The yellow and orange pigments that were "
        "there all along show through, and some trees also make red pigments.",
        "Leaves change colour because the cold weather paints them.",
        "Leaves have green stuff inside that helps the tree eat sunlight. In autumn the tree gets ready to rest and "
        "takes the green away — and the yellows and oranges that were hiding underneath finally get to show!",
    ),
    (
        "How do vaccines work?",
        "A vaccine shows your immune system a harmless version or piece of a germ. Your body makes antibodies and "
        "memory cells against it, so if the real germ arrives later, your defences recognise it and respond much "
        "faster and more strongly, usually before you get seriously ill.",
        "Vaccines work by killing all the germs already in your body.",
        None,
    ),
    (
        "What causes the tides?",
        "Mainly the Moon's gravity. It pulls hardest on the side of Earth facing it and least on the far side, which "
        "stretches the oceans into two bulges. As Earth turns through them, most coasts get two high and two low "
        "tides a day. The Sun adds a smaller effect, giving bigger spring tides when they line up.",
        "Tides are caused by the wind pushing the water onto the beach.",
        "The Moon is pulling on the sea, a bit like a magnet pulling gently. It makes the water pile up in a big "
        "bump, and as the Earth spins, your beach moves into the bump (high tide) and out again (low tide).",
    ),
    (
        "Why does ice float?",
        "When water freezes, its molecules lock into an open hexagonal pattern held by hydrogen bonds, which takes up "
        "about 9% more space than liquid water. Ice is therefore less dense than water, so it floats.",
        "Ice floats because it has air bubbles trapped inside it.",
        None,
    ),
    (
        "How does a rainbow form?",
        "Sunlight enters raindrops, bends (refracts), reflects off the back of the drop and bends again on the way "
        "out. Each colour bends by a slightly different amount, so the white light fans out into its colours. You see "
        "a rainbow when the Sun is behind you and rain is in front of you.",
        "Rainbows form when the clouds are different colours.",
        "When sunshine goes into a raindrop, the drop works like a tiny prism: it splits the light into all its "
        "colours. Millions of drops together make the big coloured arch — and the Sun has to be behind you to see it.",
    ),
    (
        "What is a black hole?",
        "A region where so much mass is packed into so small a space that gravity stops anything, even light, from "
        "escaping once it crosses the boundary called the event horizon. Many form when very massive stars collapse "
        "at the end of their lives.",
        "A black hole is a hole in space that leads to another universe.",
        None,
    ),
    (
        "Why do we have seasons?",
        "Earth's axis is tilted by about 23.5°. For part of the year your hemisphere leans towards the Sun: sunlight "
        "arrives more directly and days are longer, so it's summer. Six months later it leans away, and it's "
        "winter. The distance to the Sun barely matters — Earth is actually closest in January.",
        "It's summer when the Earth is closest to the Sun and winter when it's furthest away.",
        "The Earth is a little bit tipped over, like a spinning top that leans. When our part leans towards the Sun we "
        "get more sunshine and long days — summer! When it leans away, we get winter.",
    ),
    (
        "How does a microwave oven heat food?",
        "It fills the oven with microwaves that make water molecules in the food rotate back and forth billions of "
        "times a second. That motion turns into heat. Because the waves only get a few centimetres in, thick food "
        "heats from the outside and needs stirring or standing time.",
        "Microwaves heat food from the inside out by making it radioactive.",
        None,
    ),
    (
        "What is DNA?",
        "DNA is the long molecule in your cells that stores the instructions for building and running your body. It "
        "is a double helix of four chemical letters — A, T, C and G — and their order spells out genes, which cells "
        "read to make proteins.",
        "DNA is a type of protein that gives you energy.",
        "DNA is like a recipe book inside every tiny bit of you. It's written with just four letters, and it tells your "
        "body how to grow your eyes, your hair and everything else.",
    ),
    (
        "Why does bread rise?",
        "Yeast in the dough eats sugars and gives off carbon dioxide. Kneading builds a stretchy network of gluten "
        "that traps the gas in little bubbles, so the dough puffs up; in the oven the bubbles expand further and the "
        "structure sets.",
        "Bread rises because the oven's heat makes the flour expand.",
        None,
    ),
    (
        "How do plants make their food?",
        "By photosynthesis: in their leaves, chlorophyll captures light energy and uses it to turn carbon dioxide from "
        "the air and water from the soil into glucose, releasing oxygen as a by-product.",
        "Plants eat the soil through their roots.",
        "Plants make their own food using sunshine! Their leaves catch the light and mix it with air and water to make "
        "a kind of sugar — and they breathe out the oxygen we need.",
    ),
    (
        "What causes thunder?",
        "A lightning bolt heats the air around it to about 30,000°C in a fraction of a second. The air expands so "
        "violently that it makes a shock wave, which we hear as thunder.",
        "Thunder is the sound of clouds bumping into each other.",
        None,
    ),
    (
        "Why is the sea salty?",
        "Rain slowly dissolves minerals from rocks, and rivers carry them to the sea. When seawater evaporates the salt "
        "stays behind, so over millions of years it has built up to about 3.5% salt.",
        "The sea is salty because fish make the salt.",
        None,
    ),
]

FACTS = [
    (
        "How far away is the Moon?",
        "On average about **384,400 km** — roughly 30 Earths side by side.",
        "About 3,800 km, about the width of the United States.",
    ),
    (
        "How fast does light travel?",
        "About **300,000 km per second** in a vacuum (299,792 km/s exactly).",
        "About the speed of sound, 343 metres per second.",
    ),
    (
        "At what temperature does water boil on top of Mount Everest?",
        "About **70°C**: the air pressure there is roughly a third of sea level's, so water boils at a lower "
        "temperature — which is why cooking takes longer at altitude.",
        "At 100°C, the same as everywhere.",
    ),
    (
        "How many bones are in the adult human body?",
        "**206**. Babies are born with around 300, and many fuse together as they grow.",
        "About 50.",
    ),
    (
        "How long does sunlight take to reach Earth?",
        "About **8 minutes and 20 seconds**, crossing some 150 million km.",
        "It arrives instantly.",
    ),
    (
        "What is absolute zero?",
        "The lowest possible temperature, **−273.15°C** (0 kelvin), at which particles have the least possible energy.",
        "It's 0°C, when water freezes.",
    ),
]

DIFFERENCES = [
    (
        "weather",
        "climate",
        "**Weather** is what the atmosphere is doing now or this week; **climate** is the long-run pattern, usually "
        "averaged over 30 years. A cold day says nothing about the climate; a run of warmer decades does.",
    ),
    (
        "a virus",
        "a bacterium",
        "**Bacteria** are living single cells that can reproduce on their own; many are harmless or helpful. "
        "**Viruses** are far smaller and can only multiply inside a host's cells. Antibiotics work against bacteria, "
        "not viruses.",
    ),
    (
        "speed",
        "velocity",
        "**Speed** is how fast something moves; **velocity** is speed in a given direction. A car going round a "
        "roundabout at a steady 30 km/h has a constant speed but a changing velocity.",
    ),
    (
        "mass",
        "weight",
        "**Mass** is how much matter something contains, in kilograms, and it's the same everywhere. **Weight** is "
        "the force of gravity on that mass, in newtons. On the Moon your mass is unchanged but you weigh about a "
        "sixth as much.",
    ),
    (
        "an element",
        "a compound",
        "An **element** is made of one kind of atom, like oxygen or iron. A **compound** is two or more elements "
        "chemically bonded in fixed proportions, like water (H₂O), and has properties unlike its ingredients.",
    ),
    (
        "an asteroid",
        "a comet",
        "**Asteroids** are rocky or metallic and mostly orbit between Mars and Jupiter. **Comets** are icy and come "
        "from the outer solar system; near the Sun their ice turns to gas and grows the glowing coma and tail.",
    ),
]


def science() -> list[Pair]:
    pairs = []
    for question, good, weak, _ in SCIENCE:
        pairs.append(Pair(key=f"sci-{slug(question)}", category="science", prompt=question, better=good, worse=weak))
    for question, good, _, for_child in SCIENCE:
        if for_child is None:
            continue
        pairs.append(
            Pair(
                key=f"sci-child-{slug(question)}",
                category="science",
                messages=chat(question, good, "Can you explain that to my seven-year-old?"),
                better=for_child,
                worse=good,
            )
        )
    for question, good, weak in FACTS:
        pairs.append(
            Pair(key=f"sci-fact-{slug(question)}", category="science", prompt=question, better=good, worse=weak)
        )
    for first, second, good in DIFFERENCES:
        pairs.append(
            Pair(
                key=f"sci-diff-{slug(first)}-{slug(second)}",
                category="science",
                prompt=f"What's the difference between {first} and {second}?",
                better=good,
                worse=f"There's no real difference between {first} and {second}; people use the words interchangeably.",
            )
        )
    return pairs
