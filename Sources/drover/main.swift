import DroverCommands

await Drover.runMain()
