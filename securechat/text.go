package securechat

// pageTexts are the words of the secure pages in one language. None names the
// clinic's flow or anything about the patient: the pages may be seen by
// someone holding the phone before any check.
type pageTexts struct {
	Title         string
	ContinueTitle string
	ContinueText  string
	Continue      string
	VerifyTitle   string
	Verify        string
	VerifyWrong   string

	InvalidTitle, InvalidText   string
	UsedTitle, UsedText         string
	ExpiredTitle, ExpiredText   string
	LockedTitle, LockedText     string
	DoneTitle, DoneText         string
	BusyTitle, BusyText         string
	RefusedTitle, RefusedText   string
	TimedOutTitle, TimedOutText string
	EndedTitle, EndedText       string
	ErrorTitle, ErrorText       string
	RequestID                   string

	EndChat, Messages, YourAnswer, Send string
	Clinic, You                         string
	Yes, No                             string
	Open, ClosedSMS, ClosedMessenger    string
	ClosedEnded, Sending, SendFailed    string
	TooLong                             string
}

var texts = map[string]*pageTexts{
	"en": {
		Title:         "Secure chat",
		ContinueTitle: "Secure chat",
		ContinueText:  "Your clinic has a few private questions for you. Nothing from this chat is kept on this device.",
		Continue:      "Continue to secure chat",
		VerifyTitle:   "Please confirm it's you",
		Verify:        "Continue",
		VerifyWrong:   "That doesn't match our records. Please try again.",

		InvalidTitle:  "This link doesn't work",
		InvalidText:   "Please check that you opened the whole link from our message.",
		UsedTitle:     "This link was already used",
		UsedText:      "For your privacy, each link works only once. Reply to our message to get a new link.",
		ExpiredTitle:  "This link has expired",
		ExpiredText:   "Reply to our message to get a new link.",
		LockedTitle:   "This link is locked",
		LockedText:    "For your security, this link was locked after too many tries. The clinic has been told and will contact you.",
		DoneTitle:     "This link is no longer needed",
		DoneText:      "Please continue the conversation where you received the link.",
		BusyTitle:     "Too many tries",
		BusyText:      "Please wait a minute, then try again.",
		RefusedTitle:  "This request was refused",
		RefusedText:   "Please open the link again from our message.",
		TimedOutTitle: "Your secure chat has closed",
		TimedOutText:  "For your privacy, the secure chat closes when it ends or after a few minutes without activity. Reply to our message to get a new link.",
		EndedTitle:    "Chat ended",
		EndedText:     "You can close this page. Nothing from this chat is kept on this device.",
		ErrorTitle:    "Something went wrong",
		ErrorText:     "Please try again in a moment.",
		RequestID:     "Reference",

		EndChat:         "End chat",
		Messages:        "Messages",
		YourAnswer:      "Your answer",
		Send:            "Send",
		Clinic:          "Clinic:",
		You:             "You:",
		Yes:             "Yes",
		No:              "No",
		Open:            "Private chat. Nothing is kept on this device.",
		ClosedSMS:       "This private part is done. We'll continue by text message.",
		ClosedMessenger: "This private part is done. We'll continue on Messenger.",
		ClosedEnded:     "This chat has ended. You can close this page.",
		Sending:         "Sending…",
		SendFailed:      "Your message could not be sent. Please try again.",
		TooLong:         "That message is too long. Please shorten it.",
	},
	"es": {
		Title:         "Chat seguro",
		ContinueTitle: "Chat seguro",
		ContinueText:  "Su clínica tiene algunas preguntas privadas para usted. Nada de este chat se guarda en este dispositivo.",
		Continue:      "Continuar al chat seguro",
		VerifyTitle:   "Confirme que es usted",
		Verify:        "Continuar",
		VerifyWrong:   "No coincide con nuestros registros. Inténtelo de nuevo.",

		InvalidTitle:  "Este enlace no funciona",
		InvalidText:   "Compruebe que abrió el enlace completo de nuestro mensaje.",
		UsedTitle:     "Este enlace ya se usó",
		UsedText:      "Por su privacidad, cada enlace funciona una sola vez. Responda a nuestro mensaje para recibir uno nuevo.",
		ExpiredTitle:  "Este enlace caducó",
		ExpiredText:   "Responda a nuestro mensaje para recibir un enlace nuevo.",
		LockedTitle:   "Este enlace está bloqueado",
		LockedText:    "Por su seguridad, este enlace se bloqueó tras demasiados intentos. La clínica ya lo sabe y se pondrá en contacto con usted.",
		DoneTitle:     "Este enlace ya no es necesario",
		DoneText:      "Continúe la conversación donde recibió el enlace.",
		BusyTitle:     "Demasiados intentos",
		BusyText:      "Espere un minuto y vuelva a intentarlo.",
		RefusedTitle:  "Solicitud rechazada",
		RefusedText:   "Abra de nuevo el enlace de nuestro mensaje.",
		TimedOutTitle: "Su chat seguro se cerró",
		TimedOutText:  "Por su privacidad, el chat seguro se cierra al terminar o tras unos minutos sin actividad. Responda a nuestro mensaje para recibir un enlace nuevo.",
		EndedTitle:    "Chat terminado",
		EndedText:     "Puede cerrar esta página. Nada de este chat se guarda en este dispositivo.",
		ErrorTitle:    "Algo salió mal",
		ErrorText:     "Inténtelo de nuevo en un momento.",
		RequestID:     "Referencia",

		EndChat:         "Terminar chat",
		Messages:        "Mensajes",
		YourAnswer:      "Su respuesta",
		Send:            "Enviar",
		Clinic:          "Clínica:",
		You:             "Usted:",
		Yes:             "Sí",
		No:              "No",
		Open:            "Chat privado. Nada se guarda en este dispositivo.",
		ClosedSMS:       "Esta parte privada terminó. Seguiremos por mensaje de texto.",
		ClosedMessenger: "Esta parte privada terminó. Seguiremos en Messenger.",
		ClosedEnded:     "Esta conversación terminó. Puede cerrar esta página.",
		Sending:         "Enviando…",
		SendFailed:      "No se pudo enviar su mensaje. Inténtelo de nuevo.",
		TooLong:         "El mensaje es demasiado largo. Acórtelo, por favor.",
	},
}

// textsFor returns the page texts in lang, or in English.
func textsFor(lang string) (*pageTexts, string) {
	if t, ok := texts[lang]; ok {
		return t, lang
	}
	return texts["en"], "en"
}
