"""Static facts the simulated world is built from: countries, prices, delivery
profiles, Twilio error codes and message templates.

Numbers are plausible, not quotes: prices are in the range of Twilio's public
price lists (SMS per outbound segment, voice per minute, USD) so that the cost
dashboards see the real spread (the US at under a cent, Indonesia at forty).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CountryProfile:
    iso2: str
    weight: float  # share of traffic (relative)
    locales: tuple[tuple[str, float], ...]  # locale, share
    sms_price: float  # USD per segment
    voice_price: float  # USD per minute
    delivery_rate: float  # share of SMS delivered in normal conditions
    ttd_median_s: float  # median seconds from sent to delivery receipt
    utc_offset: int  # hours, for the daily sending rhythm
    alpha_sender: bool  # alphanumeric sender IDs allowed (no registration)
    call_answer_rate: float = 0.8


_C = CountryProfile
COUNTRIES: tuple[CountryProfile, ...] = (
    _C("US", 22.0, (("en-US", 0.88), ("es-US", 0.12)), 0.0083, 0.0140, 0.965, 4, -5, False, 0.72),
    _C("GB", 7.0, (("en-GB", 1.0),), 0.0463, 0.0158, 0.975, 5, 0, True, 0.78),
    _C("BR", 7.0, (("pt-BR", 1.0),), 0.0625, 0.0340, 0.925, 8, -3, False, 0.8),
    _C("IN", 8.0, (("en-IN", 0.65), ("hi-IN", 0.35)), 0.0830, 0.0409, 0.895, 9, 5, False, 0.82),
    _C("ID", 5.0, (("id-ID", 1.0),), 0.4073, 0.1030, 0.905, 11, 7, False, 0.8),
    _C("MX", 4.0, (("es-MX", 1.0),), 0.0956, 0.0305, 0.93, 7, -6, False, 0.8),
    _C("DE", 4.0, (("de-DE", 1.0),), 0.0865, 0.0290, 0.98, 4, 1, True, 0.78),
    _C("FR", 3.5, (("fr-FR", 1.0),), 0.0798, 0.0250, 0.975, 5, 1, True, 0.78),
    _C("NG", 3.0, (("en-NG", 1.0),), 0.2856, 0.2140, 0.86, 14, 1, True, 0.75),
    _C("PH", 3.0, (("en-PH", 0.7), ("fil-PH", 0.3)), 0.2165, 0.2000, 0.9, 10, 8, True, 0.8),
    _C("CA", 2.5, (("en-CA", 0.78), ("fr-CA", 0.22)), 0.0083, 0.0140, 0.965, 4, -5, False, 0.74),
    _C("ES", 2.0, (("es-ES", 1.0),), 0.0880, 0.0250, 0.975, 5, 1, True, 0.78),
    _C("IT", 2.0, (("it-IT", 1.0),), 0.0905, 0.0270, 0.97, 5, 1, True, 0.78),
    _C("AU", 1.8, (("en-AU", 1.0),), 0.0515, 0.0240, 0.975, 4, 10, True, 0.78),
    _C("TR", 1.6, (("tr-TR", 1.0),), 0.0412, 0.0650, 0.93, 7, 3, False, 0.8),
    _C("EG", 1.5, (("ar-EG", 1.0),), 0.2433, 0.2450, 0.87, 12, 2, True, 0.82),
    _C("PK", 1.5, (("en-PK", 0.6), ("ur-PK", 0.4)), 0.2300, 0.1500, 0.87, 12, 5, True, 0.82),
    _C("BD", 1.0, (("bn-BD", 1.0),), 0.3036, 0.1000, 0.85, 15, 6, True, 0.8),
    _C("VN", 1.2, (("vi-VN", 1.0),), 0.0832, 0.1150, 0.88, 10, 7, False, 0.8),
    _C("TH", 1.1, (("th-TH", 1.0),), 0.0325, 0.0640, 0.93, 7, 7, True, 0.8),
    _C("CO", 1.2, (("es-CO", 1.0),), 0.0590, 0.0400, 0.92, 8, -5, False, 0.8),
    _C("AR", 1.1, (("es-AR", 1.0),), 0.0714, 0.0440, 0.91, 9, -3, False, 0.8),
    _C("PE", 0.8, (("es-PE", 1.0),), 0.0690, 0.0440, 0.91, 9, -5, False, 0.8),
    _C("CL", 0.8, (("es-CL", 1.0),), 0.0633, 0.0350, 0.93, 8, -4, False, 0.8),
    _C("ZA", 1.2, (("en-ZA", 1.0),), 0.0370, 0.0590, 0.93, 8, 2, True, 0.8),
    _C("KE", 0.9, (("en-KE", 0.8), ("sw-KE", 0.2)), 0.1880, 0.1200, 0.88, 12, 3, True, 0.8),
    _C("GH", 0.6, (("en-GH", 1.0),), 0.2350, 0.2600, 0.87, 13, 0, True, 0.8),
    _C("SA", 0.8, (("ar-SA", 1.0),), 0.0900, 0.1100, 0.92, 7, 3, False, 0.78),
    _C("AE", 0.8, (("ar-AE", 0.4), ("en-AE", 0.6)), 0.0565, 0.1560, 0.94, 6, 4, False, 0.78),
    _C("MY", 0.9, (("ms-MY", 0.5), ("en-MY", 0.5)), 0.0850, 0.0570, 0.92, 8, 8, False, 0.8),
    _C("SG", 0.6, (("en-SG", 1.0),), 0.0492, 0.0200, 0.975, 4, 8, True, 0.78),
    _C("JP", 0.8, (("ja-JP", 1.0),), 0.0784, 0.0900, 0.96, 5, 9, False, 0.75),
    _C("KR", 0.6, (("ko-KR", 1.0),), 0.0425, 0.0500, 0.95, 5, 9, False, 0.75),
    _C("PL", 0.9, (("pl-PL", 1.0),), 0.0450, 0.0250, 0.97, 5, 1, True, 0.78),
    _C("NL", 0.9, (("nl-NL", 1.0),), 0.1140, 0.0300, 0.98, 4, 1, True, 0.78),
    _C("SE", 0.5, (("sv-SE", 1.0),), 0.0765, 0.0210, 0.98, 4, 1, True, 0.78),
    _C("CH", 0.5, (("de-CH", 0.7), ("fr-CH", 0.3)), 0.0670, 0.0400, 0.98, 4, 1, True, 0.78),
    _C("BE", 0.5, (("nl-BE", 0.6), ("fr-BE", 0.4)), 0.1050, 0.0330, 0.975, 4, 1, True, 0.78),
    _C("PT", 0.6, (("pt-PT", 1.0),), 0.0410, 0.0260, 0.975, 5, 0, True, 0.78),
    _C("IE", 0.4, (("en-IE", 1.0),), 0.0750, 0.0220, 0.975, 4, 0, True, 0.78),
    _C("NZ", 0.4, (("en-NZ", 1.0),), 0.1170, 0.0350, 0.97, 5, 12, True, 0.78),
    _C("RO", 0.5, (("ro-RO", 1.0),), 0.0630, 0.0400, 0.96, 6, 2, True, 0.8),
    _C("UA", 0.5, (("uk-UA", 1.0),), 0.0720, 0.1500, 0.9, 9, 2, True, 0.8),
    _C("MA", 0.5, (("fr-MA", 0.6), ("ar-MA", 0.4)), 0.1570, 0.2500, 0.88, 11, 1, True, 0.8),
    _C("IL", 0.5, (("he-IL", 1.0),), 0.1280, 0.0400, 0.95, 6, 2, True, 0.78),
)
COUNTRY_BY_ISO = {c.iso2: c for c in COUNTRIES}

# Carriers in rank order of market share, where phonenumbers' prefix data knows them.
# Countries not listed rank carriers by how many prefixes phonenumbers has for them.
CARRIER_RANK: dict[str, tuple[str, ...]] = {
    "ID": ("Telkomsel", "Indosat Ooredoo Hutchison", "XL", "Smartfren"),
    "IN": ("Reliance Jio", "Airtel", "Vodafone", "Idea"),
    "BR": ("Vivo", "Claro", "TIM"),
    "GB": ("EE", "O2", "Vodafone", "Three"),
    "NG": ("MTN", "Airtel", "Glo", "9mobile"),
    "PH": ("Globe", "Smart", "Dito"),
    "DE": ("T-Mobile", "Vodafone", "O2"),
}
CARRIER_SHARES = (0.42, 0.28, 0.18, 0.12)

# NANP countries have no carrier data in phonenumbers: a few area codes each.
NANP_AREA_CODES = {
    "US": ("212", "213", "305", "312", "404", "415", "512", "617", "702", "206", "303", "646"),
    "CA": ("416", "604", "514", "403", "613"),
}
NANP_CARRIERS = ("Verizon Wireless", "T-Mobile USA", "AT&T Wireless")

# Twilio error codes used by the world, with the text Twilio returns in error_message.
ERRORS: dict[int, tuple[str, str]] = {
    # code: (status the message ends in, error_message)
    21211: ("failed", "Invalid 'To' Phone Number"),
    21408: ("failed", "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    21610: ("failed", "Attempt to send to unsubscribed recipient"),
    21614: ("failed", "'To' number is not a valid mobile number"),
    30003: ("undelivered", "Unreachable destination handset"),
    30004: ("undelivered", "Message blocked"),  # not drawn by the history: for runtime incidents (--incident)
    30005: ("undelivered", "Unknown destination handset"),
    30006: ("undelivered", "Landline or unreachable carrier"),
    30007: ("undelivered", "Message filtered"),
    30008: ("undelivered", "Unknown error"),
    30034: ("failed", "Message from an Unregistered Number"),
}
# Mix of error codes among the "normal" non-delivered messages (before incidents).
BASE_ERROR_MIX: dict[int, float] = {
    30003: 0.34, 30005: 0.14, 30008: 0.18, 30007: 0.12, 30006: 0.06, 21614: 0.06, 21211: 0.06, 21408: 0.04,
}

PURPOSES: dict[str, dict] = {
    # share of SMS traffic, conversion type, P(convert | delivered), P(convert | not delivered)
    "verification": {"share": 0.45, "conversion": "verification_completed", "p_del": 0.84, "p_not": 0.03},
    "password_reset": {"share": 0.2, "conversion": "password_reset_completed", "p_del": 0.6, "p_not": 0.04},
    "account_alert": {"share": 0.2, "conversion": "alert_acknowledged", "p_del": 0.22, "p_not": 0.01},
    "marketing": {"share": 0.1, "conversion": "campaign_click", "p_del": 0.035, "p_not": 0.0},
    "appointment_reminder": {"share": 0.05, "conversion": "appointment_confirmed", "p_del": 0.5, "p_not": 0.05},
}
PURPOSE_TEMPLATE = {
    "verification": "ver_code",
    "password_reset": "pr_standard",
    "account_alert": "alert_login",
    "marketing": "mkt_promo",
    "appointment_reminder": "appt_reminder",
}

# Template texts by template id and language; {code} is six digits, so segment counts
# do not depend on it. Missing languages fall back to English.
TEMPLATES: dict[str, dict[str, str]] = {
    "ver_code": {
        "en": "Your Acme verification code is {code}. It expires in 10 minutes. Never share this code.",
        "es": "Tu código de verificación de Acme es {code}. Caduca en 10 minutos. No lo compartas.",
        "pt": "Seu código de verificação Acme é {code}. Ele expira em 10 minutos. Não compartilhe.",
        "fr": "Votre code de vérification Acme est {code}. Il expire dans 10 minutes.",
        "de": "Ihr Acme-Bestätigungscode lautet {code}. Er läuft in 10 Minuten ab.",
        "id": "Kode verifikasi Acme Anda adalah {code}. Berlaku 10 menit. Jangan bagikan kode ini.",
        "hi": "आपका Acme सत्यापन कोड {code} है। यह 10 मिनट में समाप्त हो जाएगा।",
        "ar": "رمز التحقق الخاص بك من Acme هو {code}. تنتهي صلاحيته خلال 10 دقائق.",
        "ja": "Acmeの認証コードは{code}です。有効期限は10分です。",
        "ko": "Acme 인증 코드는 {code}입니다. 10분 후 만료됩니다.",
        "tr": "Acme doğrulama kodunuz {code}. Kod 10 dakika içinde geçersiz olur.",
        "vi": "Mã xác minh Acme của bạn là {code}. Mã hết hạn sau 10 phút.",
        "th": "รหัสยืนยัน Acme ของคุณคือ {code} หมดอายุใน 10 นาที",
        "uk": "Ваш код підтвердження Acme: {code}. Діє 10 хвилин.",
        "he": "קוד האימות שלך ב-Acme הוא {code}. הוא יפוג בעוד 10 דקות.",
        "bn": "আপনার Acme যাচাইকরণ কোড {code}। এটি 10 মিনিটে শেষ হবে।",
        "it": "Il tuo codice di verifica Acme è {code}. Scade tra 10 minuti.",
        "pl": "Twój kod weryfikacyjny Acme to {code}. Wygasa za 10 minut.",
        "nl": "Je Acme-verificatiecode is {code}. Deze verloopt over 10 minuten.",
    },
    # The control arm of the password-reset experiment: long, two segments in GSM-7.
    "pr_standard": {
        "en": "Acme: we received a request to reset the password for your account. Use code {code} "
        "within 15 minutes to choose a new password. If you did not ask for this, you can ignore "
        "this message and your password will stay the same.",
        "es": "Acme: recibimos una solicitud para restablecer la contrasena de tu cuenta. Usa el codigo {code} "
        "en los proximos 15 minutos para elegir una nueva. Si no lo pediste, ignora este mensaje y tu "
        "contrasena seguira igual.",
        "pt": "Acme: recebemos um pedido para redefinir a senha da sua conta. Use o codigo {code} nos "
        "proximos 15 minutos para escolher uma nova senha. Se voce nao pediu, ignore esta mensagem e "
        "sua senha continuara a mesma.",
        "id": "Acme: kami menerima permintaan untuk mengatur ulang kata sandi akun Anda. Gunakan kode {code} "
        "dalam 15 menit untuk memilih kata sandi baru. Jika Anda tidak memintanya, abaikan pesan ini.",
        "hi": "Acme: हमें आपके खाते का पासवर्ड रीसेट करने का अनुरोध मिला है। नया पासवर्ड चुनने के लिए 15 मिनट "
        "के भीतर कोड {code} का उपयोग करें। यदि आपने अनुरोध नहीं किया है, तो इस संदेश को अनदेखा करें।",
    },
    # The treatment arm: short, one segment.
    "pr_short": {
        "en": "Acme password reset code: {code}. Valid 15 min.",
        "es": "Codigo para restablecer tu contrasena de Acme: {code}. Valido 15 min.",
        "pt": "Codigo para redefinir sua senha Acme: {code}. Valido por 15 min.",
        "id": "Kode reset kata sandi Acme: {code}. Berlaku 15 menit.",
        "hi": "Acme पासवर्ड रीसेट कोड: {code}",
    },
    # Smart quotes force UCS-2 on an otherwise English text: a classic cost trap.
    "alert_login": {
        "en": "Acme: we noticed a new sign-in to your account from a device we don’t recognise. If this "
        "wasn’t you, reply “STOP” to lock it.",
        "es": "Acme: detectamos un nuevo inicio de sesion en tu cuenta. Si no fuiste tu, cambia tu contrasena.",
        "pt": "Acme: detectamos um novo acesso a sua conta. Se nao foi voce, altere sua senha.",
        "de": "Acme: Neue Anmeldung bei Ihrem Konto erkannt. Waren Sie das nicht? Ändern Sie Ihr Passwort.",
        "fr": "Acme : nouvelle connexion à votre compte détectée. Si ce n'était pas vous, changez votre mot de passe.",
    },
    "mkt_promo": {
        "en": "Acme: 20% off Premium this week only [code SAVE20] – upgrade at acme.example/up. Reply STOP to opt out.",
        "es": "Acme: 20% de descuento en Premium esta semana. Mejora en acme.example/up. Responde STOP para salir.",
        "pt": "Acme: 20% de desconto no Premium so esta semana. Acesse acme.example/up. Responda SAIR para sair.",
    },
    # The treatment of exp_mkt_urgency: pushy, and members answer it with STOP.
    "mkt_promo_urgent": {
        "en": "LAST CHANCE!!! Acme Premium 20% off ends TONIGHT [code SAVE20] acme.example/up Reply STOP to opt out",
        "es": "ULTIMA OPORTUNIDAD: 20% en Acme Premium termina HOY. acme.example/up Responde STOP para salir.",
        "pt": "ULTIMA CHANCE: 20% no Acme Premium acaba HOJE. acme.example/up Responda SAIR para sair.",
    },
    "appt_reminder": {
        "en": "Reminder: your Acme appointment is tomorrow at 10:00. Reply C to confirm or R to reschedule.",
        "es": "Recordatorio: tu cita de Acme es manana a las 10:00. Responde C para confirmar.",
        "pt": "Lembrete: sua consulta Acme e amanha as 10:00. Responda C para confirmar.",
    },
}
