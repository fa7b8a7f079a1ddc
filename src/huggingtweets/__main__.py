from huggingtweets.cli.main import main

main()
