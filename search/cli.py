def main():  # placeholder until cli lands
    raise SystemExit(0)
