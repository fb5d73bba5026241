"""Demo families for everyday questions: cooking, travel and writing (the "usage" stratum)."""

from demo.data.pair import Pair, chat, slug

# --- Cooking ----------------------------------------------------------------------------

# vegetable, oven °C, minutes, a tip that makes the difference
ROASTING = [
    ("carrots", 200, "25–30", "Cut them into batons of even thickness so they cook at the same rate"),
    ("potatoes", 200, "40–45", "Parboil the chunks for 8 minutes and shake them in the pan first for crisp edges"),
    ("broccoli", 220, "15–20", "Pull them out when the tips of the florets just start to char"),
    ("butternut squash", 200, "35–40", "Cubes of about 2 cm brown nicely without drying out"),
    ("Brussels sprouts", 200, "20–25", "Halve them and lay them cut side down for a caramelised face"),
    ("cauliflower", 220, "25–30", "Break it into florets of a similar size and don't crowd the tray"),
    ("sweet potatoes", 200, "25–30", "Leave the skin on; it crisps up and holds the pieces together"),
    ("red peppers", 200, "20–25", "Strips roast fastest; whole peppers need about 35 minutes"),
    ("parsnips", 200, "30–35", "Cut out the woody core of large parsnips before roasting"),
    ("courgettes", 220, "15–20", "Salt them 10 minutes ahead and pat dry so they roast instead of steam"),
    ("beetroot", 200, "45–60", "Wrap whole beetroot in foil; it is done when a knife slides in easily"),
]

# missing ingredient, dish, the fix
SUBSTITUTIONS = [
    (
        "buttermilk",
        "pancakes",
        "Stir 1 tablespoon of lemon juice or white vinegar into 250 ml of milk and let it stand for 5 minutes "
        "until it thickens slightly. Use it exactly as you would buttermilk.",
    ),
    (
        "eggs",
        "brownies",
        "For each egg, mix 1 tablespoon of ground flaxseed with 3 tablespoons of water and leave it for 10 minutes "
        "to gel. Brownies come out a little fudgier, which most people like.",
    ),
    (
        "butter",
        "banana bread",
        "Use a neutral oil such as sunflower, about three quarters of the amount of butter (75 g oil for 100 g "
        "butter). The loaf will be slightly moister and keep well.",
    ),
    (
        "fresh basil",
        "pesto",
        "Dried basil won't work here. Use the same weight of rocket or baby spinach with a small handful of parsley; "
        "it gives a fresh, green pesto with a slightly different flavour.",
    ),
    (
        "self-raising flour",
        "scones",
        "Add 2 teaspoons of baking powder to every 150 g of plain flour and whisk it through well before you start.",
    ),
    (
        "brown sugar",
        "chocolate chip cookies",
        "Use the same amount of white sugar plus 1 tablespoon of molasses or golden syrup per 200 g. Without it the "
        "cookies will just be a bit crisper and paler.",
    ),
    (
        "double cream",
        "a creamy pasta sauce",
        "Use crème fraîche, or whole milk with a knob of butter and a spoon of the starchy pasta water; simmer "
        "gently so it doesn't split.",
    ),
    (
        "white wine",
        "risotto",
        "Replace it with the same amount of stock plus a squeeze of lemon juice at the end for the acidity wine "
        "would have given.",
    ),
]
SUBSTITUTION_WORSE = [
    "You can just leave it out, it won't make much difference.",
    "Any ingredient from your cupboard will do.",
    "I'd go to the shop and buy some, substitutes never work.",
]

# dish, markdown recipe, weak answer
RECIPES = [
    (
        "tomato soup",
        "**Serves 4 · 35 minutes**\n\n**Ingredients**\n- 2 tbsp olive oil\n- 1 onion, chopped\n- 2 garlic cloves, "
        "sliced\n- 2 × 400 g tins of chopped tomatoes\n- 500 ml vegetable stock\n- 1 tsp sugar, salt and pepper\n\n"
        "**Method**\n1. Soften the onion in the oil for 8 minutes, add the garlic for 1 more.\n2. Add the tomatoes, "
        "stock and sugar; simmer for 20 minutes.\n3. Blend until smooth and season to taste.\n\nA swirl of cream "
        "or a few basil leaves on top is a nice finish.",
        "Cook some tomatoes and blend them. Add salt.",
    ),
    (
        "guacamole",
        "**Serves 4 · 10 minutes**\n\n**Ingredients**\n- 3 ripe avocados\n- 1 lime, juiced\n- ½ small red onion, "
        "finely chopped\n- 1 tomato, seeded and diced\n- A handful of coriander, chopped\n- Salt, and chilli to "
        "taste\n\n**Method**\n1. Mash the avocados with the lime juice, leaving some texture.\n2. Stir in the onion, "
        "tomato and coriander.\n3. Season with salt and chilli, taste, and adjust the lime.",
        "Mash avocados. That's guacamole.",
    ),
    (
        "pancakes",
        "**Makes 8 · 20 minutes**\n\n**Ingredients**\n- 200 g plain flour\n- 2 tsp baking powder\n- 1 tbsp sugar, a "
        "pinch of salt\n- 1 egg\n- 300 ml milk\n- 2 tbsp melted butter\n\n**Method**\n1. Whisk the dry ingredients "
        "in a bowl.\n2. Beat in the egg, milk and butter until just combined (a few lumps are fine).\n3. Cook "
        "ladlefuls in a lightly oiled pan over medium heat, flipping when bubbles appear.",
        "Mix flour, eggs and milk and fry it.",
    ),
    (
        "egg fried rice",
        "**Serves 2 · 15 minutes**\n\n**Ingredients**\n- 300 g cooked rice, cold (yesterday's is best)\n- 2 eggs, "
        "beaten\n- 2 spring onions, sliced\n- 100 g frozen peas\n- 2 tbsp soy sauce, 1 tsp sesame oil\n\n**Method**"
        "\n1. Scramble the eggs in a hot oiled wok and set aside.\n2. Stir-fry the peas and spring onions for 2 "
        "minutes, then the rice for 3–4.\n3. Return the eggs, add soy sauce and sesame oil, toss and serve.",
        "Fry rice with egg. Use fresh rice straight from the pan so it's nice and soft.",
    ),
    (
        "overnight oats",
        "**Serves 1 · 5 minutes + overnight**\n\n**Ingredients**\n- 50 g rolled oats\n- 150 ml milk (any kind)\n- 2 "
        "tbsp yoghurt\n- 1 tsp honey or maple syrup\n- Berries or sliced banana to top\n\n**Method**\n1. Stir the "
        "oats, milk, yoghurt and honey together in a jar.\n2. Cover and refrigerate overnight.\n3. Stir, loosen with "
        "a splash of milk if needed, and add the fruit.",
        "Put oats in a bowl overnight.",
    ),
    (
        "hummus",
        "**Serves 4 · 10 minutes**\n\n**Ingredients**\n- 1 × 400 g tin of chickpeas (keep the liquid)\n- 2 tbsp "
        "tahini\n- 1 garlic clove\n- Juice of 1 lemon\n- 2 tbsp olive oil, salt\n\n**Method**\n1. Blend everything "
        "except the chickpea liquid.\n2. With the blender running, add the liquid a spoonful at a time until it is "
        "smooth and creamy.\n3. Season, then serve with a drizzle of oil and a pinch of paprika.",
        "Blend chickpeas.",
    ),
    (
        "a cheese omelette",
        "**Serves 1 · 5 minutes**\n\n**Ingredients**\n- 3 eggs\n- A knob of butter\n- 30 g grated cheddar\n- Salt and "
        "pepper\n\n**Method**\n1. Beat the eggs with a pinch of salt.\n2. Melt the butter in a small non-stick pan "
        "over medium heat; pour in the eggs and stir gently for 20 seconds, then let them set.\n3. When the top is "
        "still slightly runny, scatter the cheese over one half, fold, and slide onto a plate.",
        "Cook the eggs on the highest heat for about 10 minutes until they're brown and firm, then add cheese.",
    ),
]

# (first question, first answer, follow-up, good adaptation, weak adaptation)
COOKING_CHATS = [
    (
        "What can I make for dinner with chickpeas, spinach and a tin of tomatoes?",
        "A quick chickpea and spinach stew: soften an onion and garlic, add cumin and paprika, then the tomatoes and "
        "chickpeas. Simmer 15 minutes and stir in the spinach until it wilts.",
        "Sounds good! Can I make it a bit more filling?",
        "Yes — a few easy ways:\n\n- Serve it over rice, couscous or with flatbread.\n- Add diced potato or sweet "
        "potato with the tomatoes (simmer 20–25 minutes until tender).\n- Top each bowl with a fried egg or a spoon "
        "of Greek yoghurt for extra protein.",
        "Just eat more of it.",
    ),
    (
        "How do I cook pasta properly?",
        "Use plenty of well-salted boiling water, stir in the first minute, and cook to the time on the packet, "
        "tasting a minute early. Save a cup of the water before draining.",
        "Why save the water?",
        "The cooking water is full of starch. A few spoonfuls stirred into the sauce help it cling to the pasta "
        "and turn glossy instead of watery, and the salt in it seasons the dish.",
        "You don't really need to, it's just a habit some chefs have.",
    ),
    (
        "Give me a simple recipe for pancakes.",
        "Whisk 200 g flour, 2 tsp baking powder and a pinch of salt; beat in 1 egg, 300 ml milk and 2 tbsp melted "
        "butter; fry ladlefuls in a hot pan.",
        "Can you make it vegan?",
        "Sure:\n\n- Swap the milk for oat or soy milk (300 ml).\n- Replace the egg with 1 tbsp ground flaxseed "
        "mixed with 3 tbsp water, or just add 1 extra teaspoon of baking powder.\n- Use 2 tbsp vegetable oil instead "
        "of butter.\n\nCook them exactly the same way.",
        "Whisk 200 g flour, 2 tsp baking powder and a pinch of salt; beat in 1 egg, 300 ml milk and 2 tbsp melted "
        "butter; fry ladlefuls in a hot pan.",
    ),
    (
        "How long does cooked rice keep in the fridge?",
        "Up to a day is safest. Cool it quickly — spread it on a tray and refrigerate within an hour of cooking.",
        "Why so short? Other leftovers last longer.",
        "Rice can carry spores of *Bacillus cereus* that survive cooking. If the rice sits warm, they grow and make "
        "toxins that reheating doesn't destroy. Cooling fast and eating it within a day keeps that risk low; when "
        "you reheat it, make sure it is steaming hot all the way through.",
        "It's fine for a week really, people are too cautious.",
    ),
    (
        "What's a quick lunch I can take to work?",
        "A grain bowl: cooked rice or quinoa, a tin of beans, chopped vegetables and a simple lemon and olive oil "
        "dressing. It keeps well in a box.",
        "I don't have a microwave at work. Does that change anything?",
        "No problem — that bowl is nice cold. Other no-heat ideas:\n\n- Pasta salad with pesto, cherry tomatoes and "
        "mozzarella.\n- Wraps with hummus, grated carrot and falafel.\n- A Niçoise-style salad with tuna, egg, "
        "potatoes and green beans.\n\nKeep the dressing in a separate pot so nothing goes soggy.",
        "Then you could heat it up in the microwave before you leave.",
    ),
    (
        "How do I make my roast potatoes crispy?",
        "Parboil them for 8–10 minutes, drain, shake them in the pan to rough the edges, then roast in very hot "
        "oil at 200°C for about 45 minutes, turning once.",
        "What oil is best for that?",
        "Something with a high smoke point. Goose or duck fat gives the best flavour; sunflower, vegetable or "
        "rapeseed oil work well too. Extra virgin olive oil can smoke at that heat, so save it for dressing.",
        "Any oil works the same, it doesn't matter.",
    ),
    (
        "I want to start baking bread. Where do I begin?",
        "Start with a simple no-knead loaf: flour, water, salt and a little yeast, mixed and left overnight, then "
        "baked in a hot lidded pot.",
        "How will I know when it's baked?",
        "Three checks:\n\n1. The crust is deep golden brown.\n2. Tapping the bottom sounds hollow.\n3. If you have a "
        "thermometer, the centre reads about 95–98°C.\n\nThen let it cool for at least an hour before cutting — it "
        "is still cooking inside.",
        "When it has been in the oven for a while.",
    ),
]


def cooking() -> list[Pair]:
    pairs = []
    for veg, temp, minutes, tip in ROASTING:
        pairs.append(
            Pair(
                key=f"cook-roast-{slug(veg)}",
                category="cooking",
                prompt=f"How long should I roast {veg} in the oven?",
                better=(
                    f"Roast {veg} at {temp}°C ({temp - 20}°C fan) for about {minutes} minutes. {tip}.\n\n"
                    "Toss them in a little oil and salt first, spread them out in one layer so they roast rather "
                    "than steam, and turn them once halfway through."
                ),
                worse="Put them in the oven until they're done. It depends on your oven.",
            )
        )
    for i, (missing, dish, fix) in enumerate(SUBSTITUTIONS):
        pairs.append(
            Pair(
                key=f"cook-swap-{slug(missing)}",
                category="cooking",
                prompt=f"I'm out of {missing}. What can I use instead in {dish}?",
                better=fix,
                worse=SUBSTITUTION_WORSE[i % len(SUBSTITUTION_WORSE)],
            )
        )
    for dish, recipe, weak in RECIPES:
        pairs.append(
            Pair(
                key=f"cook-recipe-{slug(dish)}",
                category="cooking",
                prompt=f"Give me a simple recipe for {dish}.",
                better=recipe,
                worse=weak,
            )
        )
    for first, answer, follow_up, good, weak in COOKING_CHATS:
        pairs.append(
            Pair(
                key=f"cook-chat-{slug(first)}",
                category="cooking",
                messages=chat(first, answer, follow_up),
                better=good,
                worse=weak,
            )
        )
    return pairs


# --- Travel -----------------------------------------------------------------------------

# city, days, highlights in a sensible order
CITIES = [
    (
        "Lisbon",
        3,
        [
            "Alfama and the São Jorge castle",
            "Belém: the tower, the monastery and a pastel de nata",
            "Tram 28 through the old town",
            "LX Factory for food and shops",
            "A day trip to Sintra",
        ],
    ),
    (
        "Kyoto",
        4,
        [
            "Fushimi Inari at sunrise, before the crowds",
            "Arashiyama's bamboo grove and Tenryū-ji",
            "Kinkaku-ji, the Golden Pavilion",
            "An evening walk through Gion",
            "Nishiki Market for lunch",
        ],
    ),
    (
        "Rome",
        3,
        [
            "The Colosseum and the Forum (book one ticket for both)",
            "The Vatican Museums and St Peter's",
            "The Pantheon and Piazza Navona",
            "Dinner in Trastevere",
            "The Borghese Gallery (booking needed)",
        ],
    ),
    (
        "Barcelona",
        3,
        [
            "The Sagrada Família (book ahead)",
            "Park Güell",
            "The Gothic Quarter and El Born",
            "The beach at Barceloneta",
            "Sunset on Montjuïc",
        ],
    ),
    (
        "Edinburgh",
        2,
        [
            "Edinburgh Castle",
            "A walk down the Royal Mile",
            "Climbing Arthur's Seat",
            "The National Museum of Scotland (free)",
            "Dean Village and the Water of Leith",
        ],
    ),
    (
        "Mexico City",
        4,
        [
            "The Centro Histórico and the Zócalo",
            "The National Museum of Anthropology",
            "Coyoacán and the Frida Kahlo Museum",
            "A boat on the canals of Xochimilco",
            "A day trip to the pyramids of Teotihuacan",
        ],
    ),
    (
        "New York",
        3,
        [
            "A morning in Central Park",
            "The Metropolitan Museum of Art",
            "Walking the Brooklyn Bridge",
            "The High Line and Chelsea Market",
            "The ferry past the Statue of Liberty",
        ],
    ),
    (
        "Istanbul",
        3,
        [
            "Hagia Sophia and the Blue Mosque",
            "Topkapı Palace",
            "The Grand Bazaar and the Spice Bazaar",
            "A ferry along the Bosphorus",
            "Dinner in Kadıköy on the Asian side",
        ],
    ),
    (
        "Amsterdam",
        2,
        [
            "The Rijksmuseum",
            "The Anne Frank House (tickets sell out weeks ahead)",
            "A walk or boat tour of the canal ring",
            "The Jordaan neighbourhood",
            "Vondelpark by bike",
        ],
    ),
    (
        "Copenhagen",
        2,
        [
            "Nyhavn's harbour front",
            "Tivoli Gardens",
            "Cycling like a local",
            "The Design Museum",
            "A day trip to the Louisiana Museum of Modern Art",
        ],
    ),
]

PACKING = [
    (
        "a week of hiking in the Scottish Highlands in May",
        [
            "Waterproof jacket and trousers",
            "Broken-in walking boots",
            "Warm layers (fleece, hat, gloves)",
            "Midge repellent",
            "Map and compass or offline maps",
            "Blister plasters",
        ],
    ),
    (
        "a beach holiday in Greece in August",
        [
            "High-SPF sun cream and after-sun",
            "Hat and sunglasses",
            "Light cotton or linen clothes",
            "Swimwear and a quick-dry towel",
            "Sandals you can walk in",
            "A refillable water bottle",
        ],
    ),
    (
        "a winter city break in Prague",
        [
            "A warm coat, hat, scarf and gloves",
            "Waterproof shoes with grip for icy cobbles",
            "Thermal base layers",
            "A small umbrella",
            "Lip balm and hand cream",
            "A power bank (batteries drain fast in the cold)",
        ],
    ),
    (
        "a three-day business trip",
        [
            "Two outfits you can mix and match",
            "One pair of smart shoes",
            "Laptop, charger and a travel adapter",
            "Printed or offline copies of your meeting details",
            "A compact toiletry bag",
            "Something to sleep in",
        ],
    ),
    (
        "a camping weekend in autumn",
        [
            "Tent, sleeping bag rated for about 0°C, and a sleeping mat",
            "Head torch and spare batteries",
            "Stove, fuel, lighter and a pan",
            "Warm layers and a waterproof",
            "First-aid kit",
            "Bin bags to pack out rubbish",
        ],
    ),
    (
        "a ski trip to the Alps",
        [
            "Ski jacket and trousers",
            "Thermal base layers and ski socks",
            "Goggles and sunglasses",
            "Gloves and a neck warmer",
            "High-SPF sun cream (the sun is strong at altitude)",
            "Your insurance documents",
        ],
    ),
    (
        "a long-haul flight with a toddler",
        [
            "Snacks, more than you think",
            "A change of clothes for them and for you",
            "Nappies and wipes for twice the flight time",
            "Small new toys or books to unwrap",
            "Headphones sized for children",
            "Their usual comforter",
        ],
    ),
    (
        "a rainy autumn weekend in Bergen",
        [
            "A proper waterproof jacket with a hood",
            "Waterproof shoes",
            "A warm mid-layer",
            "Quick-dry trousers",
            "A dry bag for your phone",
            "A good book for the cafés",
        ],
    ),
]

CAPITALS = [
    ("Japan", "Tokyo", "Osaka"),
    ("Canada", "Ottawa", "Toronto"),
    ("Australia", "Canberra", "Sydney"),
    ("Brazil", "Brasília", "Rio de Janeiro"),
    ("Turkey", "Ankara", "Istanbul"),
    ("New Zealand", "Wellington", "Auckland"),
    ("Switzerland", "Bern", "Zurich"),
]

BUDGET_TIPS = [
    "Buy a multi-day public transport pass instead of single tickets",
    "Eat your main meal at lunchtime, when many restaurants have set menus",
    "Look for free museum days and free walking tours (tip the guide)",
    "Stay a little outside the centre, near a metro or tram line",
    "Picnic from markets and supermarkets for at least one meal a day",
]


def travel() -> list[Pair]:
    pairs = []
    for city, days, highlights in CITIES:
        per_day = -(-len(highlights) // days)
        plan = []
        for day in range(days):
            stops = highlights[day * per_day : (day + 1) * per_day]
            if stops:
                plan.append(f"**Day {day + 1}:** " + "; ".join(stops) + ".")
        pairs.append(
            Pair(
                key=f"travel-days-{slug(city)}",
                category="travel",
                prompt=f"I have {days} days in {city}. What should I see?",
                better=f"Here's a relaxed {days}-day plan for {city}:\n\n"
                + "\n".join(plan)
                + "\n\nWear comfortable shoes, and book the popular sights a few days ahead.",
                worse="Visit the main sights, try the local food and have fun!",
            )
        )
    for trip, items in PACKING:
        pairs.append(
            Pair(
                key=f"travel-pack-{slug(trip)}",
                category="travel",
                prompt=f"What should I pack for {trip}?",
                better="Beyond the usual clothes and toiletries, bring:\n\n" + "\n".join(f"- {x}" for x in items),
                worse="Clothes, a toothbrush and your passport.",
            )
        )
    for i, (city, _, highlights) in enumerate(CITIES[:6]):
        tips = BUDGET_TIPS[i % 2 :: 1][:4]
        pairs.append(
            Pair(
                key=f"travel-budget-{slug(city)}",
                category="travel",
                messages=chat(
                    f"I'm planning a trip to {city}. Any tips?",
                    f"{city} is wonderful. Don't miss {highlights[0].lower()} and {highlights[1]}, and leave some "
                    "time simply to wander.",
                    "Thanks! I'm on a tight budget though. How can I keep costs down?",
                ),
                better=f"Here's how to do {city} cheaply:\n\n" + "\n".join(f"- {t}." for t in tips),
                worse="Just try to spend less money while you're there.",
            )
        )
    for country, capital, wrong in CAPITALS:
        pairs.append(
            Pair(
                key=f"travel-capital-{slug(country)}",
                category="travel",
                prompt=f"What is the capital of {country}?",
                better=f"The capital of {country} is {capital}.",
                worse=f"The capital of {country} is {wrong}.",
                gold=True,
            )
        )
    return pairs


# --- Writing ----------------------------------------------------------------------------

MESSAGES = [
    (
        "thank-you note to a colleague who covered my shift on Friday",
        "Hi Sam,\n\nThank you so much for covering my shift on Friday at such short notice. It made a real difference, "
        "and I owe you one — just let me know when you need a swap.\n\nBest,\nAlex",
        "thx for friday",
    ),
    (
        "out-of-office reply for a week's holiday",
        "Thank you for your email. I'm on holiday from 4 to 8 August with no access to email. I'll reply when I'm "
        "back on 11 August. For anything urgent, please contact Priya at priya@example.com.",
        "I'm not here. Email me later.",
    ),
    (
        "birthday message for my grandmother's 90th",
        "Happy 90th birthday, Grandma! Ninety years of kindness, stories and the best Sunday lunches. We're so lucky "
        "to have you. With all our love — here's to many more celebrations together.",
        "Happy birthday, you're really old now!",
    ),
    (
        "polite message declining a meeting invitation",
        "Hi Jordan, thanks for the invite. I can't make Thursday's meeting because of a client deadline. Could you "
        "share the notes afterwards? I'm happy to send my input on the agenda in writing beforehand.",
        "Not coming.",
    ),
    (
        "reminder to my flatmates about taking the bins out",
        "Hi all! Quick reminder that the bins go out on Tuesday night. It's Chris's turn this week and mine next. "
        "Thanks, everyone — it keeps the kitchen a lot nicer!",
        "WHO KEEPS FORGETTING THE BINS??? This is the last time I'm saying it.",
    ),
    (
        "message congratulating a former colleague on a new job",
        "Congratulations on the new role, Maya! They're lucky to have you — I learned so much working with you. "
        "Wishing you a great start, and let's grab a coffee soon to hear all about it.",
        "Congrats I guess, hope it pays more.",
    ),
    (
        "apology for replying late to an email",
        "Hi Tom, sorry for the slow reply — last week got away from me. To answer your question: yes, Friday works, "
        "and I'll bring the draft with me.",
        "Sorry. Busy.",
    ),
    (
        "invitation to a team lunch",
        "Hi team! Let's celebrate finishing the project with lunch on Friday at 12:30 at Rosa's Kitchen, on us. "
        "Please reply by Wednesday and mention any dietary needs.",
        "Lunch Friday.",
    ),
    (
        "opening line for a cover letter for a junior data analyst job",
        "I'm applying for the Junior Data Analyst role because I love turning messy spreadsheets into clear answers, "
        "and in my final-year project I cut a charity's monthly reporting time from two days to two hours.",
        "I am writing to apply for the job that I saw advertised.",
    ),
    (
        "note to a neighbour saying I took in their parcel",
        "Hi! The courier left your parcel with me at number 12. I'm in most evenings after 6 — just knock. — Lee",
        "I have your parcel.",
    ),
]

CONCISE = [
    (
        "In order to be able to attend the meeting, you will need to register in advance of the date.",
        "Register before the date to attend the meeting.",
    ),
    (
        "At this point in time, we are not currently in a position to offer any refunds.",
        "We can't offer refunds at the moment.",
    ),
    (
        "The reason why the project was delayed is due to the fact that the supplier was late.",
        "The project was delayed because the supplier was late.",
    ),
    (
        "I would like to take this opportunity to thank each and every one of you for coming.",
        "Thank you all for coming.",
    ),
    (
        "It is absolutely essential that all staff members make sure to wash their hands.",
        "All staff must wash their hands.",
    ),
    (
        "The report, which was written by the team, was finished and completed on Monday.",
        "The team finished the report on Monday.",
    ),
    (
        "Despite the fact that it was raining heavily, the match went ahead as planned.",
        "Despite the heavy rain, the match went ahead.",
    ),
    (
        "Please be advised that the office will be closed for the duration of the holiday period.",
        "The office will be closed over the holidays.",
    ),
]

TITLES = [
    (
        "learning to bake sourdough",
        [
            "Sourdough for Beginners: My First 30 Loaves",
            "What Nobody Tells You About Your First Sourdough Starter",
            "From Flat to Fluffy: Lessons from a Year of Sourdough",
        ],
        ["30 Loaves In", "Starter Secrets", "Flat to Fluffy"],
    ),
    (
        "working from home",
        [
            "How I Made Working From Home Actually Work",
            "The Small Habits That Saved My Remote Workday",
            "Home Office on a Budget: A Practical Guide",
        ],
        ["Making Home Work", "Small Remote Habits", "Budget Home Office"],
    ),
    (
        "training for a first marathon",
        [
            "Couch to 42 km: Training for My First Marathon",
            "What I Got Wrong Training for My First Marathon",
            "Sixteen Weeks, One Finish Line",
        ],
        ["Couch to 42 km", "Marathon Mistakes", "Sixteen Weeks"],
    ),
    (
        "keeping houseplants alive",
        [
            "Why Your Houseplants Keep Dying (and How to Stop It)",
            "Five Houseplants Even I Couldn't Kill",
            "Watering Less: The Secret to Happy Plants",
        ],
        ["Stop Killing Plants", "Five Unkillable Plants", "Water Less"],
    ),
    (
        "budgeting on a student income",
        [
            "How I Budget on a Student Income Without Eating Noodles Every Night",
            "The One-Page Student Budget",
            "Saving Money at University: What Actually Worked",
        ],
        ["Student Budgeting", "One-Page Budget", "Uni Savings That Work"],
    ),
    (
        "learning Spanish as an adult",
        [
            "Learning Spanish at 35: What Worked and What Didn't",
            "Why Adults Learn Languages Differently",
            "My Daily 20-Minute Spanish Routine",
        ],
        ["Spanish at 35", "Adult Learners", "20 Minutes a Day"],
    ),
]

USAGE_PAIRS = [
    (
        "affect",
        "effect",
        "Usually **affect** is the verb and **effect** is the noun: *The weather affects my mood* and *The weather has "
        "an effect on my mood.* A handy memory aid: **A**ffect is an **A**ction, **E**ffect is the **E**nd result.",
    ),
    (
        "fewer",
        "less",
        "Use **fewer** for things you can count and **less** for amounts you can't: *fewer cars*, *less traffic*; "
        "*fewer coins*, *less money*.",
    ),
    (
        "its",
        "it's",
        "**It's** is short for *it is* or *it has*: *It's raining.* **Its** shows possession, with no apostrophe, like "
        "*his* or *hers*: *The dog wagged its tail.* If you can say *it is* instead, write *it's*.",
    ),
    (
        "who",
        "whom",
        "**Who** is the subject (*Who called?*), **whom** is the object (*Whom did you call?*, *To whom it may "
        "concern*). Test: if you'd answer with *he*, use *who*; with *him*, use *whom*.",
    ),
    (
        "i.e.",
        "e.g.",
        "**e.g.** means *for example* and introduces one or more examples: *citrus fruit, e.g. lemons*. **i.e.** means "
        "*that is* and restates or narrows: *the capital, i.e. Canberra*.",
    ),
    (
        "lay",
        "lie",
        "**Lay** takes an object — you lay *something* down: *Lay the book on the table.* **Lie** has none: *I need to "
        "lie down.* The confusing part: the past tense of *lie* is *lay* (*Yesterday I lay on the sofa*).",
    ),
]


def writing() -> list[Pair]:
    pairs = []
    for kind, good, weak in MESSAGES:
        pairs.append(
            Pair(
                key=f"write-msg-{slug(kind)}",
                category="writing",
                prompt=f"Write a short {kind}.",
                better=good,
                worse=weak,
            )
        )
    for long, short in CONCISE:
        pairs.append(
            Pair(
                key=f"write-concise-{slug(long)}",
                category="writing",
                prompt=f'Make this sentence more concise: "{long}"',
                better=short,
                worse=f"{long[:-1]}, and this is something that is important to keep in mind.",
            )
        )
    for topic, titles, shorter in TITLES:
        pairs.append(
            Pair(
                key=f"write-titles-{slug(topic)}",
                category="writing",
                messages=chat(
                    f"Give me three title ideas for a blog post about {topic}.",
                    "\n".join(f"{i}. {t}" for i, t in enumerate(titles, 1)),
                    "Can you make them shorter? Four words at most.",
                ),
                better="\n".join(f"{i}. {t}" for i, t in enumerate(shorter, 1)),
                worse="\n".join(f"{i}. {t}" for i, t in enumerate(reversed(titles), 1)),
            )
        )
    for first, second, explanation in USAGE_PAIRS:
        pairs.append(
            Pair(
                key=f"write-usage-{slug(first)}-{slug(second)}",
                category="writing",
                prompt=f'When should I use "{first}" and when "{second}"?',
                better=explanation,
                worse="They mean the same thing, so you can use either one.",
            )
        )
    return pairs
