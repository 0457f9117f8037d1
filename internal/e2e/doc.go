// Package e2e holds safeflow's end-to-end tests: the real service (server.New
// and Server.Run on 127.0.0.1), on a SQLite file and on PostgreSQL, driven
// only the way providers drive it. Patients' messages arrive as webhooks
// signed exactly as Twilio and Meta sign them; replies are read where the
// providers would receive them, at the twiliotest and messengertest
// servers. The package has no code of its own outside its tests.
package e2e
