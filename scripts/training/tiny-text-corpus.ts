import { createRandom, type Random } from './random.js'

/**
 * The tiny text model's corpus: short stories about a shop and its orders, written from a
 * small grammar in this file. The project wrote every word of it, so it is free to ship and
 * to train on, and the same seed always writes the same text (`npm run train -- --corpus`
 * rewrites scripts/training/data/tiny-text.txt from it).
 */

const NAMES = [
  'Ada',
  'Ben',
  'Clara',
  'David',
  'Elena',
  'Farid',
  'Grace',
  'Hugo',
  'Ines',
  'Jonas',
  'Kira',
  'Liam',
  'Mona',
  'Noah',
  'Olga',
  'Paul',
]
const CITIES = [
  'Lyon',
  'Porto',
  'Ghent',
  'Turin',
  'Bergen',
  'Leeds',
  'Graz',
  'Malmo',
  'Cork',
  'Nantes',
  'Basel',
  'Delft',
]
const COLOURS = ['red', 'blue', 'green', 'black', 'white', 'yellow', 'grey', 'brown']
const THINGS = [
  'lamp',
  'chair',
  'table',
  'kettle',
  'teapot',
  'blanket',
  'clock',
  'mirror',
  'basket',
  'candle',
  'shelf',
  'rug',
]
const COUNTS = ['one', 'two', 'three', 'four', 'five', 'six']
const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday']
const PAYMENTS = ['by card', 'in cash', 'by bank transfer', 'with a voucher']
const FEELINGS = ['happy', 'pleased', 'delighted', 'surprised', 'tired', 'patient']
const WEATHER = [
  'it was raining',
  'the sun was out',
  'the wind was cold',
  'snow was falling',
  'the sky was grey',
]

function plural(count: string, thing: string): string {
  return count === 'one' ? `one ${thing}` : `${count} ${thing}s`
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1)
}

function story(random: Random): string {
  const name = random.pick(NAMES)
  const city = random.pick(CITIES)
  const count = random.pick(COUNTS)
  const colour = random.pick(COLOURS)
  const thing = random.pick(THINGS)
  const start = random.int(DAYS.length - 2)
  const ordered = DAYS[start] as string
  const shipped = DAYS[start + 1] as string
  const arrived = DAYS[start + 2] as string
  const price = 5 + random.int(95)
  const pronoun = random.next() < 0.5 ? 'she' : 'he'
  const items = plural(count, `${colour} ${thing}`)
  const sentences = [
    random.pick([
      `${name} lives in ${city}.`,
      `In ${city}, ${random.pick(WEATHER)}.`,
      `${name} needed a new ${thing}.`,
    ]),
    random.pick([
      `On ${ordered}, ${name} ordered ${items} from the shop.`,
      `${name} ordered ${items} on ${ordered}.`,
      `On ${ordered} ${pronoun} placed an order for ${items}.`,
    ]),
    random.pick([
      `${capitalise(pronoun)} paid ${price} euros ${random.pick(PAYMENTS)}.`,
      `The order cost ${price} euros, and ${pronoun} paid ${random.pick(PAYMENTS)}.`,
    ]),
    random.pick([
      `The shop shipped the order on ${shipped}, and it arrived on ${arrived}.`,
      `The parcel left the shop on ${shipped} and reached ${city} on ${arrived}.`,
    ]),
    random.pick([
      `${name} was ${random.pick(FEELINGS)} with the ${thing}.`,
      `When the parcel came, ${random.pick(WEATHER)}, and ${name} was ${random.pick(FEELINGS)}.`,
      `${capitalise(pronoun)} put the ${thing} by the window.`,
    ]),
  ]
  return sentences.join(' ')
}

/** About `bytes` characters of stories, one per line. */
export function tinyTextCorpus(bytes = 120_000, seed = 1851): string {
  const random = createRandom(seed)
  const lines: string[] = []
  let size = 0
  while (size < bytes) {
    const line = story(random)
    lines.push(line)
    size += line.length + 1
  }
  return `${lines.join('\n')}\n`
}
