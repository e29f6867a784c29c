import { createRandom, type Random } from './random.js'

/**
 * A synthetic used-car market shaped like the seed project's data set: 16 features, 8
 * categorical and 8 numeric, some of them missing. Prices follow a log-linear model of the
 * features with multiplicative noise and a few non-linear effects (depreciation that slows
 * with age, diminishing returns on power), so a linear fit is good but not perfect.
 */

export const CATEGORICAL = {
  brand: [
    'audi',
    'bmw',
    'dacia',
    'fiat',
    'ford',
    'hyundai',
    'mercedes-benz',
    'renault',
    'skoda',
    'toyota',
    'volkswagen',
    'volvo',
  ],
  fuel_type: ['petrol', 'diesel', 'hybrid', 'electric', 'lpg'],
  transmission: ['manual', 'automatic'],
  body_type: ['hatchback', 'sedan', 'estate', 'suv', 'coupe', 'van'],
  drivetrain: ['fwd', 'rwd', 'awd'],
  seller_type: ['dealer', 'private'],
  owners: ['first', 'second', 'third', 'fourth_or_more'],
  color: ['white', 'black', 'grey', 'silver', 'blue', 'red', 'other'],
} as const

export type CategoricalName = keyof typeof CATEGORICAL

export const NUMERIC = {
  year: { type: 'integer', unit: 'year', minimum: 2000, maximum: 2025 },
  mileage_km: { type: 'number', unit: 'km', minimum: 0, maximum: 400_000 },
  engine_cc: { type: 'integer', unit: 'cm3', minimum: 800, maximum: 6500 },
  power_kw: { type: 'number', unit: 'kW', minimum: 40, maximum: 450 },
  torque_nm: { type: 'number', unit: 'N·m', minimum: 80, maximum: 900 },
  weight_kg: { type: 'number', unit: 'kg', minimum: 800, maximum: 3000 },
  seats: { type: 'integer', unit: 'seats', minimum: 2, maximum: 9 },
  doors: { type: 'integer', unit: 'doors', minimum: 2, maximum: 5 },
} as const

export type NumericName = keyof typeof NUMERIC

/** Inputs the generator never leaves out; the card marks them required. */
export const REQUIRED: ReadonlySet<string> = new Set([
  'brand',
  'fuel_type',
  'transmission',
  'year',
  'mileage_km',
])

export interface CarRow {
  numeric: Record<NumericName, number | null>
  categorical: Record<CategoricalName, string | null>
  price: number
}

const BRAND_PREMIUM: Record<string, number> = {
  audi: 0.35,
  bmw: 0.4,
  dacia: -0.35,
  fiat: -0.25,
  ford: -0.05,
  hyundai: -0.1,
  'mercedes-benz': 0.45,
  renault: -0.15,
  skoda: 0,
  toyota: 0.05,
  volkswagen: 0.1,
  volvo: 0.3,
}
const BODY: Record<string, { effect: number; seats: number[]; doors: number[]; weight: number }> = {
  hatchback: { effect: -0.1, seats: [4, 5], doors: [3, 5], weight: 1150 },
  sedan: { effect: 0, seats: [5], doors: [4], weight: 1450 },
  estate: { effect: 0.02, seats: [5], doors: [5], weight: 1550 },
  suv: { effect: 0.15, seats: [5, 7], doors: [5], weight: 1800 },
  coupe: { effect: 0.1, seats: [2, 4], doors: [2], weight: 1400 },
  van: { effect: -0.05, seats: [7, 8, 9], doors: [4, 5], weight: 1900 },
}
const FUEL_EFFECT: Record<string, number> = {
  petrol: 0,
  diesel: 0.05,
  hybrid: 0.15,
  electric: 0.25,
  lpg: -0.15,
}
const OWNER_EFFECT: Record<string, number> = {
  first: 0,
  second: -0.06,
  third: -0.12,
  fourth_or_more: -0.2,
}
const DRIVE_EFFECT: Record<string, number> = { fwd: 0, rwd: 0.05, awd: 0.1 }
const REFERENCE_YEAR = 2025

const clamp = (value: number, name: NumericName) =>
  Math.min(NUMERIC[name].maximum, Math.max(NUMERIC[name].minimum, value))

function generateRow(random: Random): CarRow {
  const brand = random.pick(CATEGORICAL.brand)
  const fuel = random.pick(CATEGORICAL.fuel_type, [45, 30, 12, 8, 5])
  const body = random.pick(CATEGORICAL.body_type, [25, 25, 15, 25, 5, 5])
  const shape = BODY[body] ?? { effect: 0, seats: [5], doors: [5], weight: 1400 }
  const transmission = random.pick(
    CATEGORICAL.transmission,
    fuel === 'electric' ? [0, 1] : [55, 45],
  )
  const drivetrain = random.pick(
    CATEGORICAL.drivetrain,
    body === 'suv' ? [40, 10, 50] : [75, 15, 10],
  )
  const age = Math.min(REFERENCE_YEAR - 2000, Math.floor(random.next() ** 1.3 * 20))
  const year = REFERENCE_YEAR - age
  const mileage = clamp(
    Math.round(age * 14_000 * Math.exp(0.35 * random.normal()) + 2000 * random.next()),
    'mileage_km',
  )
  const premium = BRAND_PREMIUM[brand] ?? 0
  const power = clamp(
    Math.round(70 * Math.exp(0.35 * random.normal() + premium + shape.effect)),
    'power_kw',
  )
  const engine =
    fuel === 'electric'
      ? null
      : clamp(Math.round((power * 20 + 300 * random.normal()) / 10) * 10, 'engine_cc')
  const torque = clamp(
    Math.round(
      power *
        (fuel === 'diesel' || fuel === 'electric' ? 2.6 : 1.8) *
        Math.exp(0.1 * random.normal()),
    ),
    'torque_nm',
  )
  const weight = clamp(
    Math.round(shape.weight + power * 1.5 + (fuel === 'electric' ? 300 : 0) + 80 * random.normal()),
    'weight_kg',
  )

  const logPrice =
    Math.log(30_000) +
    premium +
    shape.effect +
    (FUEL_EFFECT[fuel] ?? 0) +
    (transmission === 'automatic' ? 0.08 : 0) +
    (DRIVE_EFFECT[drivetrain] ?? 0) +
    0.5 * Math.log(power / 90) -
    0.11 * age +
    0.001 * age * age -
    0.0000018 * mileage +
    0.15 * random.normal()
  const owners = random.pick(CATEGORICAL.owners, age < 3 ? [90, 10, 0, 0] : [50, 30, 15, 5])
  const seller = random.pick(CATEGORICAL.seller_type, [60, 40])

  const row: CarRow = {
    numeric: {
      year,
      mileage_km: mileage,
      engine_cc: engine,
      power_kw: power,
      torque_nm: torque,
      weight_kg: weight,
      seats: random.pick(shape.seats),
      doors: random.pick(shape.doors),
    },
    categorical: {
      brand,
      fuel_type: fuel,
      transmission,
      body_type: body,
      drivetrain,
      seller_type: seller,
      owners,
      color: random.pick(CATEGORICAL.color, [22, 22, 18, 14, 10, 8, 6]),
    },
    price:
      Math.round(
        Math.exp(logPrice + (OWNER_EFFECT[owners] ?? 0) + (seller === 'dealer' ? 0.05 : 0)) / 10,
      ) * 10,
  }
  // Listings leave out what the seller did not fill in.
  for (const name of Object.keys(row.numeric) as NumericName[]) {
    if (!REQUIRED.has(name) && random.next() < 0.06) row.numeric[name] = null
  }
  for (const name of Object.keys(row.categorical) as CategoricalName[]) {
    if (!REQUIRED.has(name) && random.next() < 0.05) row.categorical[name] = null
  }
  return row
}

export function generateCarPrices(rows: number, seed: number): CarRow[] {
  const random = createRandom(seed)
  return Array.from({ length: rows }, () => generateRow(random))
}
