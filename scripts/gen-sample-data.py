#!/usr/bin/env python3
"""Generates examples/data/books.ndjson: the quickstart's sample data set, a few thousand
book records (title, description, author, publisher, tags, year, pages, rating, published
date) in the source's bulk format. Deterministic: the same seed gives the same file."""
import json
import random
import sys

SEED = 1729
COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 5000

ADJ = ["Practical", "Modern", "Effective", "Concurrent", "Distributed", "Scalable", "Reliable",
       "Functional", "Applied", "Advanced", "Hands-On", "Pragmatic", "Essential", "Robust",
       "Real-World", "Elegant", "Secure", "High-Performance", "Resilient", "Idiomatic"]
TOPIC = ["Rust", "Go", "Python", "Search Engines", "Databases", "Networking", "Compilers",
         "Operating Systems", "Machine Learning", "Cryptography", "Web Services", "Embedded Systems",
         "Data Pipelines", "Cloud Infrastructure", "Graph Algorithms", "Information Retrieval",
         "Consensus Protocols", "Storage Engines", "Observability", "Type Systems"]
FORM = ["", " in Action", ": A Field Guide", " from Scratch", " for Engineers", ": Patterns and Practice",
        " Cookbook", ": The Definitive Guide", " Explained", " at Scale"]
FIRST = ["Ada", "Brian", "Chen", "Dana", "Emeka", "Fatima", "Grace", "Hiro", "Ines", "Jonas",
         "Kavya", "Lars", "Maya", "Nikolai", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tomas",
         "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe"]
LAST = ["Lovelace", "Kernighan", "Wei", "Okafor", "Haddad", "Hopper", "Tanaka", "Moreau",
        "Berg", "Iyer", "Nilsson", "Cohen", "Petrov", "Ivanova", "Sharma", "Dubois", "Alvarez",
        "Lindqvist", "Novak", "Zhang", "Castillo", "Yilmaz", "Müller", "O'Brien", "Santos"]
PUBLISHER = ["Northwind Press", "Blue Heron Books", "Lambda House", "Kestrel Media",
             "Open Circuit", "Granite Publishing", "Tidewater Technical"]
TAGS = ["rust", "go", "python", "search", "databases", "distributed-systems", "networking",
        "security", "performance", "algorithms", "cloud", "ml", "compilers", "testing", "devops"]
OPENERS = ["This book shows how to", "A hands-on guide that teaches you to",
           "Written for working engineers, it explains how to", "Step by step, you learn to",
           "Drawing on years of production experience, the author explains how to"]
VERBS = ["design", "build", "debug", "tune", "test", "operate", "scale", "secure", "profile",
         "deploy", "reason about", "measure"]
OBJECTS = ["fault-tolerant services", "full-text indexes", "lock-free data structures",
           "query planners", "replicated logs", "streaming pipelines", "memory allocators",
           "async runtimes", "inverted indexes", "consistent hashing rings", "write-ahead logs",
           "column stores", "rate limiters", "schedulers", "caches", "parsers"]
CLOSERS = ["Every chapter ends with exercises.", "Includes case studies from real outages.",
           "Code samples are available online.", "No prior experience with the topic is assumed.",
           "Covers both theory and the pitfalls of practice.", "Benchmarks back every claim.",
           "The second half is a complete worked project."]


def description(rng, topic):
    sentences = []
    for _ in range(rng.randint(2, 4)):
        sentences.append(f"{rng.choice(OPENERS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                         f"with {topic.lower()}.")
    sentences.append(rng.choice(CLOSERS))
    return " ".join(sentences)


def main():
    rng = random.Random(SEED)
    out = sys.stdout
    for i in range(COUNT):
        topic = rng.choice(TOPIC)
        year = rng.randint(1995, 2026)
        doc = {
            "title": f"{rng.choice(ADJ)} {topic}{rng.choice(FORM)}",
            "description": description(rng, topic),
            "author": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "publisher": rng.choice(PUBLISHER),
            "tags": rng.choice(TAGS),
            "year": year,
            "pages": rng.randint(120, 980),
            "rating": round(rng.uniform(2.0, 5.0), 1),
            "published": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T00:00:00Z",
        }
        out.write(json.dumps({"key": f"book-{i:05d}", "doc": doc}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
