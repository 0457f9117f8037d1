package engine

// systemTexts are the messages safeflow writes itself, per language. None
// carries health information: several travel on SMS and Messenger.
var systemTexts = map[string]map[string]string{
	"optout": {
		"en": "You're unsubscribed and will get no more messages. Reply START to subscribe again.",
		"es": "Se ha dado de baja y no recibirá más mensajes. Responda START para volver a suscribirse.",
	},
	"optin": {
		"en": "You're subscribed again. Reply HELP for help or STOP to opt out.",
		"es": "Está suscrito de nuevo. Responda HELP para ayuda o STOP para darse de baja.",
	},
	"help": {
		"en": "Reply STOP to opt out. For help, please call the clinic.",
		"es": "Responda STOP para darse de baja. Para ayuda, llame a la clínica.",
	},
	"noflow": {
		"en": "Sorry, we didn't understand that. Reply HELP for help.",
		"es": "Lo sentimos, no entendimos. Responda HELP para ayuda.",
	},
	"retry": {
		"en": "Sorry, I didn't understand that.",
		"es": "Lo siento, no entendí.",
	},
	"gaveup": {
		"en": "Sorry, I couldn't understand. Someone from the clinic will reply here soon.",
		"es": "Lo siento, no pude entender. Alguien de la clínica le responderá pronto.",
	},
	"pointer": {
		"en": "This part of our chat is private. Please answer on the secure page from the link we sent you.",
		"es": "Esta parte de la conversación es privada. Responda en la página segura del enlace que le enviamos.",
	},
	"link": {
		"en": "To continue privately, tap {link} (valid for {minutes} minutes).",
		"es": "Para continuar en privado, toque {link} (válido por {minutes} minutos).",
	},
	"unavailable": {
		"en": "Sorry, our secure chat is not available right now. Someone from the clinic will contact you.",
		"es": "Lo sentimos, el chat seguro no está disponible ahora. Alguien de la clínica le contactará.",
	},
	"back_sms": {
		"en": "Thank you. This private part is done; we'll continue by text message.",
		"es": "Gracias. Esta parte privada terminó; seguiremos por mensaje de texto.",
	},
	"back_messenger": {
		"en": "Thank you. This private part is done; we'll continue on Messenger.",
		"es": "Gracias. Esta parte privada terminó; seguiremos en Messenger.",
	},
	"ended": {
		"en": "This chat has ended. You can close this page.",
		"es": "Esta conversación terminó. Puede cerrar esta página.",
	},
	"yes": {"en": "yes", "es": "sí"},
	"no":  {"en": "no", "es": "no"},
}

// systemText returns a system message in lang, or in English.
func systemText(key, lang string) string {
	t := systemTexts[key]
	if s, ok := t[lang]; ok {
		return s
	}
	return t["en"]
}
