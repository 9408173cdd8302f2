// Schedules module
