"""`python -m shared.cli`: the `fastlane` command where the console script is not installed (the images)."""

from shared.cli.app import main

main()
