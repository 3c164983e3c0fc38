"""The reviewer console (Textual). Screens only show what the services return
and call them for every change; data access runs in thread workers."""
