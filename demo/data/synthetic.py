"""Demo families that look generated from task templates (the "synthetic" stratum): rewrite, summarise, convert."""

import random

from demo.data.pair import Pair, slug

FORMAL = [
    (
        "hey, can u send me the report asap? thx",
        "Could you please send me the report at your earliest convenience? Thank you.",
    ),
    (
        "sorry, can't make it tmrw, something came up",
        "I apologise, but I will be unable to attend tomorrow due to an unforeseen commitment.",
    ),
    ("the new software is kinda buggy tbh", "To be candid, the new software has a number of defects."),
    ("we gotta cut costs or we're toast", "We need to reduce costs significantly to remain viable."),
    ("loved the talk, super useful stuff!", "Thank you for the talk; I found it extremely useful."),
    ("just checking u got my last email?", "I am writing to confirm that you received my previous email."),
    (
        "the meeting's moved to 3, don't be late",
        "Please note that the meeting has been rescheduled to 3 p.m.; kindly arrive on time.",
    ),
    ("no clue why the numbers don't add up", "I am currently unable to explain the discrepancy in the figures."),
    ("can we push the deadline a bit?", "Would it be possible to extend the deadline slightly?"),
    ("heads up, the printer's broken again", "Please be aware that the printer is out of order once again."),
    ("thx for the help yesterday, u saved me", "Thank you for your help yesterday; it was invaluable."),
    ("gonna be working from home fri", "I will be working from home on Friday."),
]

# paragraph, one-sentence summary, a weak summary that adds or misses things
SUMMARIES = [
    (
        "From 1 March the town library will open on Sundays from 10 am to 4 pm. Weekday hours stay the same. The "
        "change follows a survey in which 70% of members asked for weekend access, and is funded by a local trust.",
        "From 1 March the library will open 10 am–4 pm on Sundays, funded by a local trust after members asked for "
        "weekend access.",
        "The library is changing all of its opening hours because it is closing down.",
    ),
    (
        "Northfield Logistics will trial a four-day week for six months from June. Staff keep full pay and aim to "
        "deliver the same output. The company will measure productivity, sick days and customer satisfaction before "
        "deciding whether to make the change permanent.",
        "Northfield Logistics will trial a full-pay four-day week for six months from June and then decide based on "
        "productivity, sickness and customer satisfaction.",
        "Northfield Logistics has cut everyone's pay and hours permanently.",
    ),
    (
        "The city's bike-sharing scheme added 40 new stations this spring, mostly in the eastern suburbs. Rides rose "
        "by a quarter compared with last year. Annual passes now cost £90, down from £120.",
        "The bike-share scheme added 40 mainly eastern stations, rides are up 25%, and annual passes fell to £90.",
        "There are bikes in the city. Some are new. People ride them. Passes cost money. The stations are in places.",
    ),
    (
        "Volunteers have turned an empty car park behind the station into a community garden with 30 raised beds. "
        "Local schools will use ten of them for lessons, and the rest are available to residents for £10 a year.",
        "Volunteers built a 30-bed community garden behind the station, with ten beds for schools and the rest for "
        "residents at £10 a year.",
        "A garden opened.",
    ),
    (
        "The museum's dinosaur hall will close on 5 May for eight months of renovation. The skeletons will be cleaned "
        "and remounted in more accurate poses, and new interactive displays will be added. The rest of the museum "
        "stays open.",
        "The dinosaur hall closes from 5 May for eight months while its skeletons are remounted and new displays "
        "added; the rest of the museum stays open.",
        "The whole museum is closing for a year because the dinosaurs were fake.",
    ),
    (
        "Maple Street will be closed to traffic every Saturday in July for a street market. Buses will divert via "
        "Oak Road, and residents' parking permits remain valid in the nearby Elm Street car park.",
        "Maple Street closes to traffic on July Saturdays for a market; buses divert via Oak Road and residents can "
        "park in the Elm Street car park.",
        "Maple Street is closing forever and there will be no buses.",
    ),
    (
        "A study of 2,000 office workers found that those who took a ten-minute walk after lunch reported feeling "
        "more alert in the afternoon. The researchers caution that the study relied on self-reports and did not "
        "measure performance.",
        "Office workers who walked ten minutes after lunch reported feeling more alert, though the study relied on "
        "self-reports rather than measured performance.",
        "Scientists proved that walking after lunch makes you twice as productive.",
    ),
    (
        "The swimming pool's new timetable adds an early session from 6 to 7 am on weekdays and a quiet session for "
        "people with sensory needs on Sunday mornings. Family swims move from Saturday afternoon to Saturday morning.",
        "The pool adds 6–7 am weekday swims and a Sunday-morning quiet session, and moves family swims to Saturday "
        "mornings.",
        "The pool has a timetable with sessions on some days.",
    ),
    (
        "Residents can now recycle soft plastics such as bread bags and crisp packets at collection points in three "
        "supermarkets. The council says kerbside collection of soft plastics should follow next year.",
        "Soft plastics can now be recycled at three supermarkets, with kerbside collection expected next year.",
        "You can put all plastic in your recycling bin now.",
    ),
    (
        "After two years of repairs, the historic Riverside Theatre reopens on 12 October with a season of five plays. "
        "Tickets go on sale on 1 September, with a 20% discount for under-25s.",
        "The Riverside Theatre reopens on 12 October after two years of repairs, with tickets on sale from 1 "
        "September and 20% off for under-25s.",
        "The Riverside Theatre, which is historic, has been repaired over two years and will reopen on 12 October "
        "with five plays, and tickets go on sale on 1 September, and under-25s get 20% off, which is a good deal.",
    ),
]

# value, unit, target unit, factor
CONVERSIONS = [
    (10, "kilometres", "miles", 0.621371),
    (5, "kilograms", "pounds", 2.20462),
    (30, "°C", "°F", None),
    (2, "litres", "US pints", 2.11338),
    (150, "centimetres", "inches", 0.393701),
    (20, "miles", "kilometres", 1.609344),
    (12, "ounces", "grams", 28.3495),
]
OBVIOUS_CONVERSIONS = [
    (1, "kilometre", "metres", 1000, 100),
    (2, "kilograms", "grams", 2000, 200),
    (3, "hours", "minutes", 180, 300),
    (5, "minutes", "seconds", 300, 500),
    (1, "litre", "millilitres", 1000, 100),
    (2, "metres", "centimetres", 200, 20),
    (1, "day", "hours", 24, 12),
]

REVIEWS = [
    (
        "The battery lasts all day and the screen is gorgeous. Best phone I've owned.",
        "positive",
        "praises the battery and the screen without reservation",
    ),
    (
        "Arrived two weeks late and the box was crushed. Never ordering again.",
        "negative",
        "complains about the delay and the damage and rules out buying again",
    ),
    ("Great food, but we waited an hour for a table.", "mixed", "likes the food but not the wait"),
    (
        "The hotel room was spotless and the staff couldn't have been kinder.",
        "positive",
        "praises both the room and the staff",
    ),
    ("Stopped working after three days. Customer service never replied.", "negative", "reports a fault and no support"),
    ("Comfortable shoes, though they run a size small.", "mixed", "likes the comfort but warns about the sizing"),
    ("Honestly the best pizza in town, and cheap too!", "positive", "praises the quality and the price"),
    ("The plot was clever but the acting was wooden.", "mixed", "likes the plot but not the acting"),
    ("Too loud, too crowded and overpriced.", "negative", "criticises the noise, the crowds and the price"),
    ("Easy to assemble and it looks great in our living room.", "positive", "praises the assembly and the look"),
]
FLIPPED = {"positive": "negative", "negative": "positive", "mixed": "positive"}

WORDS = ["orange", "banana", "cherry", "apple", "mango", "kiwi", "grape", "lemon", "peach", "plum", "fig", "date"]

# sentence with mistakes, the corrections in the order they appear
SPELLING = [
    ("I recieved the pakage yesterday.", [("recieved", "received"), ("pakage", "package")]),
    ("We definately need to buy more bred.", [("definately", "definitely"), ("bred", "bread")]),
    ("The meating is on Wensday.", [("meating", "meeting"), ("Wensday", "Wednesday")]),
    ("Their going to the libary tomorow.", [("Their", "They're"), ("libary", "library"), ("tomorow", "tomorrow")]),
    ("It was a realy beautifull sunset.", [("realy", "really"), ("beautifull", "beautiful")]),
    ("Please seperate the recyling.", [("seperate", "separate"), ("recyling", "recycling")]),
    ("She is an independant and sucessful writer.", [("independant", "independent"), ("sucessful", "successful")]),
    ("The goverment anounced new rules.", [("goverment", "government"), ("anounced", "announced")]),
    ("I'm not shure wich one to choose.", [("shure", "sure"), ("wich", "which")]),
    ("The resturant was compleatly full.", [("resturant", "restaurant"), ("compleatly", "completely")]),
]


def _fix(sentence: str, fixes: list[tuple[str, str]]) -> str:
    for wrong, right in fixes:
        sentence = sentence.replace(wrong, right, 1)
    return sentence


def _num(x: float) -> str:
    return f"{x:,.1f}".rstrip("0").rstrip(".")


def synthetic() -> list[Pair]:
    pairs = []
    for casual, formal in FORMAL:
        pairs.append(
            Pair(
                key=f"syn-formal-{slug(casual)}",
                category="rewriting",
                prompt=f'Rewrite this in a formal tone: "{casual}"',
                better=formal,
                worse=casual.capitalize() + " Regards.",
            )
        )
    for i, (paragraph, summary, weak) in enumerate(SUMMARIES):
        pairs.append(
            Pair(
                key=f"syn-summary-{i + 1:02d}",
                category="summarising",
                prompt=f"Summarise in one sentence:\n\n{paragraph}",
                better=summary,
                worse=weak,
            )
        )
    for value, unit, target, factor in CONVERSIONS:
        if factor is None:  # °C → °F is not a plain factor
            good = f"{value}°C = **{_num(value * 9 / 5 + 32)}°F** (multiply by 9/5, then add 32)."
            weak = f"{value}°C = {_num((value - 32) * 5 / 9)}°F."
        else:
            good = f"{value} {unit} ≈ **{_num(value * factor)} {target}** (1 {unit.rstrip('s')} ≈ {factor:g} {target})."
            weak = f"{value} {unit} ≈ {_num(value / factor)} {target}."
        pairs.append(
            Pair(
                key=f"syn-convert-{value}-{slug(unit)}-{slug(target)}",
                category="conversion",
                prompt=f"Convert {value} {unit} to {target}.",
                better=good,
                worse=weak,
            )
        )
    for value, unit, target, right, wrong in OBVIOUS_CONVERSIONS:
        pairs.append(
            Pair(
                key=f"syn-convert-{value}-{slug(unit)}-{slug(target)}",
                category="conversion",
                prompt=f"Convert {value} {unit} to {target}.",
                better=f"{value} {unit} = {right:,} {target}.",
                worse=f"{value} {unit} = {wrong:,} {target}.",
                gold=True,
            )
        )
    for i, (review, label, why) in enumerate(REVIEWS):
        pairs.append(
            Pair(
                key=f"syn-sentiment-{i + 1:02d}",
                category="classification",
                prompt=f'Classify the sentiment of this review as positive, negative or mixed:\n\n"{review}"',
                better=f"**{label.capitalize()}** — the reviewer {why}.",
                worse=f"**{FLIPPED[label].capitalize()}.**",
            )
        )
    rng = random.Random("demo-ordering")  # fixed seed: the same words and numbers every run
    for i in range(5):
        words = rng.sample(WORDS, 6)
        ordered = sorted(words)
        swapped = ordered[:]
        swapped[1], swapped[4] = swapped[4], swapped[1]
        pairs.append(
            Pair(
                key=f"syn-sort-words-{i + 1}",
                category="ordering",
                prompt="Sort these words alphabetically: " + ", ".join(words),
                better=", ".join(ordered),
                worse=", ".join(swapped),
            )
        )
    for i in range(5):
        numbers = rng.sample(range(1, 100), 7)
        ordered = sorted(numbers)
        pairs.append(
            Pair(
                key=f"syn-sort-numbers-{i + 1}",
                category="ordering",
                prompt="Put these numbers in ascending order: " + ", ".join(map(str, numbers)),
                better=", ".join(map(str, ordered)),
                worse=", ".join(map(str, ordered[:2] + ordered[4:5] + ordered[3:4] + ordered[2:3] + ordered[5:])),
            )
        )
    for sentence, fixes in SPELLING:
        pairs.append(
            Pair(
                key=f"syn-spelling-{slug(sentence)}",
                category="spelling",
                prompt=f'Correct the spelling in this sentence: "{sentence}"',
                better=_fix(sentence, fixes),
                worse=_fix(sentence, fixes[:1]),
            )
        )
    return pairs
