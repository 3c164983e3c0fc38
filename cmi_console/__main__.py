from cmi_console.cli.app import main

main()
