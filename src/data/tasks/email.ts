/**
 * Turn a raw SpamAssassin email (RFC 822 headers + body, possibly quoted-printable or HTML)
 * into a short plain-ASCII excerpt: the subject and the first words of the body.
 */

/** Split raw email text into its headers (name lower-cased -> first value, unfolded) and body. */
export function parseEmail(raw: string): { headers: Map<string, string>; body: string } {
  const text = raw.replace(/\r\n?/g, '\n');
  const cut = text.indexOf('\n\n');
  const head = cut >= 0 ? text.slice(0, cut) : text;
  const body = cut >= 0 ? text.slice(cut + 2) : '';
  const headers = new Map<string, string>();
  const unfolded = head.replace(/\n[ \t]+/g, ' ');
  for (const line of unfolded.split('\n')) {
    const m = /^([A-Za-z][A-Za-z0-9-]*):\s?(.*)$/.exec(line);
    if (m && !headers.has(m[1].toLowerCase())) headers.set(m[1].toLowerCase(), m[2].trim());
  }
  return { headers, body };
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Plain text of a body: quoted-printable soft breaks and escapes decoded, HTML tags removed. */
export function plainBody(body: string, headers: Map<string, string>): string {
  let b = body;
  // Multipart: keep the first text part's content (skip MIME part headers).
  if (/multipart/i.test(headers.get('content-type') ?? '')) {
    const parts = b.split(/\n--[^\n]*\n/);
    const textPart = parts.find((p) => /content-type:\s*text\//i.test(p)) ?? parts[1] ?? b;
    const inner = textPart.indexOf('\n\n');
    b = inner >= 0 ? textPart.slice(inner + 2) : textPart;
  }
  if (/quoted-printable/i.test(headers.get('content-transfer-encoding') ?? '') || /=\n/.test(b) || /=3D/i.test(b)) {
    b = b.replace(/=\n/g, '').replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
  }
  if (/<(html|body|p|br|div|table|font)\b/i.test(b)) {
    b = b
      .replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<!--[\s\S]*?-->/g, ' ')
      .replace(/<[^>]*>/g, ' ')
      .replace(/&([a-z]+);/gi, (m, e: string) => ENTITIES[e.toLowerCase()] ?? ' ')
      .replace(/&#\d+;/g, ' ');
  }
  // Drop quoted replies and signature separators' tails.
  const lines = b.split('\n').filter((l) => !/^\s*>/.test(l));
  const sig = lines.findIndex((l) => /^-- ?$/.test(l));
  return (sig >= 0 ? lines.slice(0, sig) : lines).join('\n');
}

/** Keep printable ASCII, drop URLs and e-mail addresses, collapse whitespace. */
export function cleanText(text: string): string {
  return text
    .replace(/https?:\/\/\S+|www\.\S+/gi, ' ')
    .replace(/\S+@\S+/g, ' ')
    .replace(/[^\x20-\x7e\n]/g, ' ')
    .replace(/([-=_*#~+.])\1{2,}/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** First `n` whitespace-separated words of a text. */
export function firstWords(text: string, n: number): string {
  const words = text.split(' ').filter((w) => w.length > 0);
  return words.slice(0, n).join(' ');
}

/**
 * The excerpt the `spam` task shows: `Subject: ... | <first bodyWords words>` (ASCII only),
 * or undefined when the body has fewer than `minWords` words after cleaning.
 */
export function emailExcerpt(raw: string, bodyWords = 30, minWords = 5): string | undefined {
  const { headers, body } = parseEmail(raw);
  const subject = firstWords(cleanText(headers.get('subject') ?? ''), 12);
  const text = cleanText(plainBody(body, headers));
  if (text.split(' ').length < minWords) return undefined;
  return `Subject: ${subject.length > 0 ? subject : '(none)'}\n${firstWords(text, bodyWords)}`;
}
