from kiln.build_rules.cli import main

main()
